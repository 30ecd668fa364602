"""Every hint is a command that works, and so is every fwgen command README shows.

Each hint is triggered for real; the command it names must be in its text, and is then run
(when it can run here) or at least accepted by fwgen's own parser and input checks (when it
would start a download or a build).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fwgen import cli, flash, images
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.commands import build as build_command
from fwgen.commands import smoke as smoke_command
from tests import manifests
from tests.conftest import REPO, anywhere_recipe
from tests.rootfs import fake_kernel_images
from tests.test_flash import MiB, make_card, needs_bmaptool

FWGEN = [sys.executable, "-m", "fwgen"]
FAKE = REPO / "tests" / "fake_serial_console.py"


def hint_of(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "\n  fix: " in err, err
    return err.split("\n  fix: ", 1)[1]


def run(command: str, **kwargs) -> subprocess.CompletedProcess:
    """A hint's command line as a user would paste it (fwgen is `python -m fwgen`)."""
    argv = shlex.split(command)
    if argv[0] == "fwgen":
        argv = [*FWGEN, *argv[1:]]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, **kwargs)


def accepted(command: str) -> None:
    """`command` parses, and passes the command's own checks of its arguments' combination."""
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    if args.command == "build":
        build_command._check_combination(args)
    if args.command == "smoke":
        smoke_command.multiplier(args.timeout_multiplier)


@needs_bmaptool
def test_the_bmaptool_hint_runs(tmp_path, capsys, monkeypatch):
    make_card(tmp_path / "images", size=4 * MiB, chunks=(1,))
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    hint = hint_of(
        ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device", "x.img"], capsys
    )
    assert "apt-get install bmap-tools" in hint and "fwgen doctor --stage flash" in hint
    checked = run("fwgen doctor --stage flash", env={**os.environ, "PATH": str(empty)})
    assert checked.returncode == 2, checked.stderr
    assert "MISSING bmaptool" in checked.stdout
    assert "apt-get install bmap-tools" in checked.stdout
    monkeypatch.undo()
    checked = run("fwgen doctor --stage flash")
    assert checked.returncode == 0 and "Everything fwgen needs is here." in checked.stdout


def test_the_unknown_board_hint_runs(capsys):
    hint = hint_of(["fetch", "nosuchboard"], capsys)
    assert "known boards: vexpress" in hint and "fwgen boards" in hint
    listed = run("fwgen boards")
    assert listed.returncode == 0 and listed.stdout.startswith("vexpress: ")
    hint = hint_of(["smoke"], capsys)
    assert "fwgen smoke BOARD ..." in hint and "fwgen smoke --board FILE ..." in hint
    accepted("fwgen smoke vexpress")
    accepted("fwgen smoke --board FILE")


def test_the_recipe_hints_run(tmp_path, capsys, monkeypatch):
    boards = tmp_path / "boards"
    recipe = boards / "latin" / "board.toml"
    recipe.parent.mkdir(parents=True)
    text = anywhere_recipe().replace('description = "ARM', 'description = "caf\u00e9 ARM')
    recipe.write_bytes(text.encode("latin-1"))
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(tmp_path / "missing-boards"))
    hint = hint_of(["fetch", "vexpress"], capsys)
    command = re.search(r"\((mkdir -p \S+)\)", hint).group(1)
    assert run(command).returncode == 0
    assert main(["boards"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(boards))
    hint = hint_of(["fetch", "latin", "--offline"], capsys)
    command = hint.split("(if it is Latin-1): ", 1)[1].strip()
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "café ARM" in load_board("latin").description


def test_the_smoke_hints_run(tmp_path, capsys, monkeypatch):
    """No images: the build hint is complete (it has --rootfs). Untested images: the smoke
    hint runs, with the board named so that it is found (--board for a recipe elsewhere)."""
    monkeypatch.chdir(tmp_path)
    hint = hint_of(["smoke", "vexpress", "--kernel", "6.1"], capsys)
    assert "fwgen build vexpress --kernel-only --rootfs DIR|CPIO" in hint
    accepted("fwgen build vexpress --kernel-only --rootfs DIR")  # was: no --rootfs
    hint = hint_of(["smoke", "vexpress", "--images", ".", "--timeout-multiplier", "inf"], capsys)
    assert "--timeout-multiplier 3" in hint
    accepted("fwgen smoke vexpress --timeout-multiplier 3")

    recipe = tmp_path / "elsewhere" / "fakeboard" / "board.toml"
    recipe.parent.mkdir(parents=True)
    text = anywhere_recipe()
    recipe.write_text(text[: text.index("[smoke]")] + '[smoke.checks."ok"]\nrun = "true"\n')
    directory = fake_kernel_images(tmp_path / "images")
    images.finalize(directory, manifests.sample(board="fakeboard"))
    argv = ["release", "--board", str(recipe), "--images", str(directory), "--out", "dist"]
    hint = hint_of(argv, capsys)
    command = hint.split("run: ", 1)[1].split(" (or pass", 1)[0]
    assert command == f"fwgen smoke --board {recipe} --images {directory}"
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "qemu-system-arm").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (fake_bin / "qemu-system-arm").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    smoked = run(command, env={**env, "FAKE_CONSOLE_MODE": "login"})
    assert smoked.returncode == 0, smoked.stdout + smoked.stderr
    assert main(argv + ["--version", "1"]) == 0


def test_the_flash_and_release_hints_name_complete_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hint = hint_of(["flash", "vexpress", "--device", "x.img"], capsys)
    assert "fwgen build vexpress (not --kernel-only)" in hint
    accepted("fwgen build vexpress")
    hint = hint_of(["release", "vexpress", "--kernel", "6.1"], capsys)
    assert "fwgen build vexpress; fwgen smoke vexpress" in hint
    accepted("fwgen build vexpress")
    accepted("fwgen smoke vexpress")
    hint = hint_of(["release"], capsys)
    assert "fwgen release BOARD --version V" in hint and "fwgen release --verify DIR" in hint
    accepted("fwgen release vexpress --version 1.0")
    accepted("fwgen release --verify dist/x")
    assert flash.IMAGE == "sdcard.img"


# --- README ---------------------------------------------------------------------------------

SYNOPSIS = re.compile(r"[\[\]|]|\.\.\.")  # table rows and "..." are synopses, not commands


def readme_commands() -> list[str]:
    """Every fwgen command README shows: lines in code blocks, and inline `fwgen ...` spans
    outside headings."""
    found: list[str] = []
    in_block = False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            line = line.removeprefix("$ ").split("  #", 1)[0].strip()
            if line.startswith("fwgen "):
                found.append(line)
        elif not line.startswith("#"):
            found += [span.strip() for span in re.findall(r"`(fwgen [^`]+)`", line)]
    return [c for c in dict.fromkeys(found) if not SYNOPSIS.search(c)]


def test_every_readme_fwgen_command_is_one_fwgen_accepts(monkeypatch, tmp_path):
    commands = readme_commands()
    subcommands = {importlib.import_module(m).NAME for m in cli.COMMANDS}
    assert "fwgen doctor --stage flash" in commands
    assert len(commands) > 15
    for command in commands:
        words = shlex.split(command)
        if len(words) == 2 and words[1] in subcommands and words[1] not in ("boards", "doctor"):
            continue  # prose (a heading) naming the subcommand itself
        try:
            accepted(command)
        except SystemExit:
            pytest.fail(f"README shows a command fwgen does not accept: {command}")
        args = cli.build_parser().parse_args(words[1:])
        board = getattr(args, "board", None)
        if board and not Path(board).suffix and "/" not in board:
            assert board in ("vexpress", "myboard"), f"{command}: unknown board {board}"
        if getattr(args, "kernel", None) and board == "vexpress":
            load_board("vexpress").kernel(args.kernel)


def test_readme_doctor_hint_runs():
    done = run("fwgen doctor --stage flash")
    assert done.returncode in (0, 2) and "flashing with bmaptool:" in done.stdout
    assert "unknown board" not in done.stderr


def test_readme_release_example_makes_the_name_it_shows():
    """`fwgen release BOARD [--kernel V] --version X  # -> dist/NAME/`: NAME is what that
    command makes (<board>-<kernel variant>-<version>; the variant defaults to the board's)."""
    text = (REPO / "README.md").read_text()
    shown = re.findall(r"^(fwgen release \S+[^#\n]*?)\s+# -> dist/([^/\s]+)/", text, re.M)
    assert shown
    for command, name in shown:
        args = cli.build_parser().parse_args(shlex.split(command)[1:])
        board = load_board(args.board)
        variant = args.kernel or board.default_kernel
        assert name == f"{board.name}-{variant}-{args.release_version}", command
