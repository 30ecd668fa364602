"""`pip install .` from a clean copy into a fresh venv finds the data trees from anywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


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


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout")
def test_installed_fwgen_finds_its_trees(tmp_path):
    source = _clean_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", str(source)], check=True)
    shutil.rmtree(source)  # nothing may still point into the source tree

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run(
        [str(venv / "bin" / "fwgen"), "boards", "--json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (board,) = json.loads(out)
    assert set(board["kernels"]) == {"4.0", "6.1"}

    probe = (
        "import json; from fwgen import paths; "
        "print(json.dumps([str(p) for p in "
        "(paths.boards_dir(), paths.br2_external_dir(), paths.overlays_dir())]))"
    )
    dirs = json.loads(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for d in map(Path, dirs):
        assert d.is_dir(), d
        assert venv in d.parents, f"{d} is not inside the installed package"
        assert any(d.iterdir()), f"{d} was installed empty"
