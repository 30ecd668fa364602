"""A release's README.txt: every command it shows runs, as shown, in a READ-ONLY copy.

The release is made for a board with checks a host shell passes ("fakeboard", found through
FWGEN_BOARD_PATH), from FAKE images, smoke-tested with the FAKE console
(tests/fake_serial_console.py as qemu-system-arm). The README's commands then run inside the
release directory, which (with its parent) is a read-only bind mount in a private mount
namespace (unshare -m): even root gets EROFS there. fwgen smoke runs with the fake console
again; the raw QEMU command line and fwgen run start the REAL qemu-system-arm (it must accept
the arguments and keep running; the fake kernel boots nowhere, which is not the point).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fwgen import fsutil, images, release, release_verify, smoke
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.manifest import Manifest
from tests import manifests
from tests.conftest import REPO, anywhere_recipe
from tests.rootfs import fake_kernel_images
from tests.test_flash import MiB, make_card, needs_bmaptool
from tests.test_release import FAKE_GENERATOR, FAKE_OUTPUT_MAKEFILE

FAKE = REPO / "tests" / "fake_serial_console.py"
CHECKS = """\
[smoke]
login = { prompt = "login:", user = "root", timeout = 60 }

[smoke.checks."the shell answers"]
run = "echo ok"
expect = '^ok$'
"""


def fakeboard(folder: Path) -> Path:
    text = anywhere_recipe()
    recipe = folder / "fakeboard" / "board.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(text[: text.index("[smoke]")] + CHECKS)
    return folder


def manifest(build: str) -> Manifest:
    return manifests.sample(board="fakeboard", build=build, kernel={"series": {}})


def kernel_only(root: Path) -> Path:
    out = fake_kernel_images(root / "fakeboard-6.1-kernel" / "images")
    images.finalize(out, manifest("kernel-only"))
    return out


def buildroot_like(root: Path) -> Path:
    """A Buildroot layout in a FAKE output directory; sdcard.img looks like ext2 to fwgen."""
    output = root / "fakeboard-6.1"
    out = output / "images"
    tree = root / "fake-buildroot-tree"
    (tree / "utils").mkdir(parents=True)
    (tree / "utils" / "generate-cyclonedx").write_text(FAKE_GENERATOR)
    make_card(out, size=16 * MiB, chunks=(1, 8))
    with (out / "sdcard.img").open("r+b") as f:
        f.seek(0x438)
        f.write(b"\x53\xef")  # the ext2 magic, so the smoke test takes it for a root
    subprocess.run(
        ["bmaptool", "create", "-o", str(out / "sdcard.img.bmap"), str(out / "sdcard.img")],
        check=True,
    )
    shutil.copyfile(out / "sdcard.img", out / "rootfs.ext2")
    fake_kernel_images(root / "k")
    for name in ("zImage", "vexpress-v2p-ca9.dtb"):
        shutil.copyfile(root / "k" / name, out / name)
    (output / "Makefile").write_text(FAKE_OUTPUT_MAKEFILE.format(tree=tree))
    (output / "show-info.json").write_text("{}")
    images.finalize(out, dataclasses.replace(manifest("buildroot"), buildroot=manifests.BUILDROOT))
    return out


def commands(readme: str) -> list[str]:
    """The "  $ " lines of README.txt, with their continuation lines joined."""
    found: list[str] = []
    lines = readme.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("  $ "):
            command = lines[i][4:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            found.append(command)
        i += 1
    return found


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): fsutil.sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def in_read_only_copy(dist: Path, workdir: Path, script: str, env: dict) -> str:
    """Run `script` (bash) in `workdir` with `dist` mounted read-only for it."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        # cd again: the shell's directory must be the one seen through the new mount
        setup = (
            f'mount --bind "{dist}" "{dist}" && mount -o remount,bind,ro "{dist}" || exit 99\n'
            f'cd "{workdir}" || exit 98\n'
        )
        argv = ["unshare", "-m", "--propagation", "private", "bash", "-c", setup + script]
    else:  # an ordinary user: permissions are enough
        subprocess.run(["chmod", "-R", "a-w", str(dist)], check=True)
        argv = ["bash", "-c", script]
    run = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
    if run.returncode == 99:
        pytest.skip(f"no read-only bind mount here: {run.stderr.strip()}")
    return run.stdout + run.stderr


@needs_bmaptool
@pytest.mark.parametrize("kind", ["kernel-only", "buildroot"])
def test_every_readme_command_works_in_a_read_only_release(kind, tmp_path, monkeypatch, capsys):
    boards = fakeboard(tmp_path / "boards")
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(boards))
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "qemu-system-arm").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (fake_bin / "qemu-system-arm").chmod(0o755)
    real_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{real_path}")

    directory = kernel_only(tmp_path / "build") if kind == "kernel-only" else None
    directory = directory or buildroot_like(tmp_path / "build")
    assert main(["smoke", "fakeboard", "--images", str(directory)]) == 0
    dist = tmp_path / "dist"
    assert main(["release", "fakeboard", "--images", str(directory), "--out", str(dist)]) == 0
    made = next(p for p in dist.iterdir() if p.is_dir())
    readme = (made / "README.txt").read_text()
    shown = commands(readme)
    expected = {"sha256sum", "fwgen release", "fwgen run", "fwgen smoke", "qemu-system-arm"}
    if kind == "buildroot":
        expected |= {"bmaptool", "fwgen flash", "xz"}
    assert all(any(c.startswith(e) for c in shown) for e in expected), shown
    assert "not one of fwgen's own boards" in readme
    before = tree_digest(dist)

    cards = tmp_path / "cards"
    cards.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fwgen = tmp_path / "bin"
    fwgen.mkdir()
    (fwgen / "fwgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fwgen "$@"\n')
    (fwgen / "fwgen").chmod(0o755)
    script = ["set +e", "touch probe 2>/dev/null && echo WRITABLE"]
    for n, command in enumerate(shown):
        command = command.replace("/dev/sdX", str(cards / f"card{n}.img"))
        # Interactive or endless ones: the real QEMU must still run after a few seconds.
        if command.startswith(("qemu-system-arm", "fwgen run")):
            command = f'PATH="{fwgen}:{real_path}" timeout 5 {command} </dev/null'
        script += [f"echo '### {n} {command}'", command, f"echo '### rc {n} '$?"]
    env = {
        **os.environ,
        "PATH": f"{fwgen}{os.pathsep}{fake_bin}{os.pathsep}{real_path}",
        "TMPDIR": str(tmp),
        "PYTHONPATH": str(REPO),
    }
    output = in_read_only_copy(dist, made, "\n".join(script) + "\n", env)
    assert "WRITABLE" not in output, "the release directory was not read-only"
    codes = dict(re.findall(r"^### rc (\d+) (\d+)$", output, re.M))
    assert len(codes) == len(shown), output
    for n, command in enumerate(shown):
        endless = command.startswith(("qemu-system-arm", "fwgen run"))
        want = "124" if endless else "0"  # 124: still running when timeout stopped it
        assert codes[str(n)] == want, f"{command!r} exited {codes[str(n)]}:\n{output}"
    assert "Traceback" not in output
    assert tree_digest(dist) == before  # nothing was written into the release
    # fwgen smoke said where its results went, and they are there
    note = re.search(r"results go to (\S+) instead", output)
    assert note and Path(note.group(1)).is_relative_to(tmp), output
    assert (Path(note.group(1)) / smoke.RESULT).is_file()
    assert "smoke PASSED" in output
    if kind == "buildroot":
        card = images.read_layout(made).file("sdcard.img")
        flashed = sorted(cards.iterdir())
        assert len(flashed) == 2  # bmaptool's and fwgen flash's
        for target in flashed:
            with card.open() as f:
                assert target.read_bytes()[: 9 * MiB] == f.read(9 * MiB)
        assert "verified: read back the" in output


def test_verify_says_untested_for_an_allow_untested_release(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(fakeboard(tmp_path / "boards")))
    directory = kernel_only(tmp_path / "build")
    dist = tmp_path / "dist"
    argv = ["release", "fakeboard", "--images", str(directory), "--out", str(dist)]
    assert main([*argv, "--allow-untested", "--version", "1"]) == 0
    capsys.readouterr()
    for path in (dist / "fakeboard-6.1-1", dist / "fakeboard-6.1-1.tar.gz"):
        assert main(["release", "--verify", str(path)]) == 0
        out = capsys.readouterr().out
        assert "UNTESTED (released with --allow-untested: no smoke result" in out
        assert "OK" not in out
    board = load_board("fakeboard")
    made = release.make_release(board, directory, tmp_path / "b", version="1", allow_untested=True)
    assert release_verify.tested_state(release_verify.release_record(made.directory)).startswith(
        "released"
    )
    assert release_verify.tested_state(release_verify.release_record(made.archive)).startswith(
        "released"
    )
