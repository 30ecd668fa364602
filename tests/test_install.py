"""README's install commands, run as printed, into a temporary HOME from a clean copy of the
checkout: as root and as an unprivileged user, with the system's Python (externally managed,
PEP 668, on Debian 12). The installed fwgen must be on PATH and find its data trees from any
directory, with nothing pointing back into the source tree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBE = (
    "import json; from fwgen import paths; print(json.dumps([str(p) for p in "
    "(paths.boards_dir(), paths.br2_external_dir(), paths.overlays_dir())]))"
)


def _clean_copy(dest: Path) -> Path:
    """The files a clean clone would have (tracked or not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def install_commands() -> list[str]:
    """The lines of README's first shell block, up to the first fwgen command."""
    text = (REPO / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("\n```", 1)[0]
    lines = []
    for line in block.splitlines():
        if line.startswith("fwgen "):
            break
        lines.append(line)
    return lines


def _system_python() -> str:
    python = shutil.which("python3", path=SYSTEM_PATH)
    if python is None:
        pytest.skip("no python3 on the system PATH")
    check = subprocess.run([python, "-c", "import ensurepip, venv"], capture_output=True)
    if check.returncode != 0:
        pytest.skip(f"{python} has no venv/ensurepip: apt-get install python3-venv")
    return python


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("who", ["root", "user"])
def test_readme_install_commands_work_as_printed(who):
    # Not pytest's tmp_path: its parents are private to root, and the user must get in.
    with tempfile.TemporaryDirectory(prefix="fwgen-install-") as tmp:
        os.chmod(tmp, 0o755)
        _install_as(Path(tmp), who)


def _install_as(tmp_path: Path, who: str) -> None:
    _system_python()
    commands = install_commands()
    assert commands[0].startswith("python3 -m venv "), commands
    assert not any(c.strip().startswith(("pip install", "sudo")) for c in commands)
    home = tmp_path / "home"
    home.mkdir()
    source = _clean_copy(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = "\n".join(
        [
            "set -e",
            f"cd {source}",
            *commands,
            f"rm -rf {source}",  # nothing may still point into the source tree
            f"cd {elsewhere}",
            "echo '### which'; command -v fwgen",
            "echo '### version'; fwgen --version",
            "echo '### boards'; fwgen boards --json",
            "echo '### trees'",
            f'"$(dirname "$(readlink -f "$(command -v fwgen)")")/python" -c "{PROBE}"',
        ]
    )
    env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    for name in ("http_proxy", "https_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    argv = ["bash", "-c", script]
    if who == "user":
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            pytest.skip("needs root and runuser to run the install as another user")
        subprocess.run(["chown", "-R", "nobody:nogroup", str(tmp_path)], check=True)
        argv = ["runuser", "-u", "nobody", "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                *argv]  # fmt: skip
    elif os.geteuid() != 0:
        pytest.skip("the root variant needs root")
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    parts = dict(re.findall(r"^### (\w+)\n(.*?)(?=^### |\Z)", run.stdout, re.M | re.S))
    assert parts["which"].strip() == str(home / ".local" / "bin" / "fwgen")
    assert parts["version"].startswith("fwgen ")
    (board,) = json.loads(parts["boards"])
    assert board["name"] == "vexpress" and set(board["kernels"]) == {"4.0", "6.1"}
    venv = home / ".local" / "share" / "fwgen"
    for d in map(Path, json.loads(parts["trees"])):
        assert venv in d.parents, f"{d} is not inside the installed package"
        assert any(d.iterdir()), f"{d} was installed empty"


def test_the_system_python_refuses_a_plain_pip_install_here():
    """Why README does not say `pip install .`: the system Python is externally managed."""
    python = _system_python()
    marker = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not (Path(marker) / "EXTERNALLY-MANAGED").is_file():
        pytest.skip(f"{python} is not externally managed here")
    run = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--no-deps", str(REPO)],
        capture_output=True,
        text=True,
        env={"PATH": SYSTEM_PATH, "HOME": "/nonexistent"},
    )
    if "No module named pip" in run.stderr:
        pytest.skip(f"{python} has no pip at all (README's venv line does not need it)")
    assert run.returncode != 0 and "externally-managed-environment" in run.stderr
