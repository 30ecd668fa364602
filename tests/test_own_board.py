"""Your own board without forking: --board FILE everywhere, FWGEN_BOARD_PATH, paths relative
to the recipe's folder, and one broken recipe not hiding the others."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fwgen import cli, defconfig, paths
from fwgen.board import load_board, load_board_file
from fwgen.cli import COMMANDS, main
from fwgen.commands import board_from_args
from fwgen.errors import FwgenError
from tests.conftest import REPO

FWGEN = [sys.executable, "-m", "fwgen"]


def own_board(folder: Path, name: str = "myboard") -> Path:
    """A board made from board/vexpress/ the way README shows: its own copies of the files,
    the kernel series and the overlay, paths relative to its folder."""
    board = folder / name
    shutil.copytree(REPO / "board" / "vexpress", board)
    shutil.copytree(REPO / "br2-external" / "patches", board / "patches")
    shutil.copytree(REPO / "overlays" / "common", board / "overlay")
    recipe = board / "board.toml"
    text = recipe.read_text().replace('"../../br2-external/patches/', '"patches/')
    recipe.write_text(text.replace('"../../overlays/common"', '"overlay"'))
    return recipe


def test_paths_resolve_against_the_recipes_folder(tmp_path):
    board = load_board_file(own_board(tmp_path))
    folder = tmp_path / "myboard"
    assert board.name == "myboard" and board.base == folder
    assert board.kernel("6.1").patches_dir() == folder / "patches" / "linux" / "6.1.174"
    assert board.kernel("4.0").fragment_path() == folder / "linux.fragment"
    assert board.overlay_dirs() == [folder / "overlay"]
    assert board.buildroot.post_image_path() == folder / "post-image.sh"
    assert board.buildroot.genimage_path() == folder / "genimage.cfg"
    # fwgen's own recipe reaches fwgen's trees through '..'
    vexpress = load_board("vexpress")
    assert vexpress.kernel("4.0").patches_dir() == paths.br2_external_dir().joinpath(
        "patches", "linux", "4.0"
    )
    assert vexpress.overlay_dirs() == [paths.overlays_dir() / "common"]
    # the Buildroot build gets the recipe's series, wherever it lives
    files = defconfig.global_patch_files(board, "4.0")
    assert files["linux/4.0/series"].decode().split() == sorted(
        p.name for p in (folder / "patches" / "linux" / "4.0").glob("*.patch")
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('fragment = "linux.fragment"', 'fragment = "nope.fragment"', 'kernels."4.0".fragment'),
        ('"patches/linux/6.1.174"', '"patches/linux/6.9"', 'kernels."6.1".patches'),
        ('overlays = ["overlay"]', 'overlays = ["linux.fragment"]', "overlays[0]"),
        ('genimage_config = "genimage.cfg"', 'genimage_config = "../x.cfg"', "genimage_config"),
    ],
)
def test_a_missing_path_names_file_and_key(tmp_path, old, new, key):
    recipe = own_board(tmp_path)
    text = recipe.read_text()
    assert old in text
    recipe.write_text(text.replace(old, new, 1))
    with pytest.raises(FwgenError) as e:
        load_board_file(recipe)
    assert f"{recipe}: key '" in str(e.value) and key in str(e.value)
    assert "relative to the recipe's folder" in str(e.value)


def test_a_series_in_any_folder_reaches_buildroot(tmp_path):
    recipe = own_board(tmp_path)
    flat = tmp_path / "myboard" / "series-6.1"
    shutil.copytree(tmp_path / "myboard" / "patches" / "linux" / "6.1.174", flat)
    recipe.write_text(recipe.read_text().replace('"patches/linux/6.1.174"', '"series-6.1"'))
    board = load_board_file(recipe)
    assert board.kernel("6.1").patches_dir() == flat
    files = defconfig.global_patch_files(board, "6.1")
    for patch in flat.glob("*.patch"):
        assert files[f"linux/6.1.174/{patch.name}"] == patch.read_bytes()


def _board_commands() -> list[str]:
    """Every subcommand (and patch action) that takes a BOARD."""
    found = []
    for module_name in COMMANDS:
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser()
        module.configure(parser)
        parsers = {module.NAME: parser}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers = {f"{module.NAME} {n}": p for n, p in action.choices.items()}
        for name, p in parsers.items():
            if any(a.dest == "board" for a in p._actions):
                found.append(name)
    return found


def test_every_command_with_a_board_takes_board_file(tmp_path):
    recipe = own_board(tmp_path)
    commands = _board_commands()
    assert {"build", "fetch", "smoke", "run", "flash", "patch check", "release"} <= set(commands)
    parser = cli.build_parser()
    for command in commands:
        required = {
            "config": ["--kernel-src", "x"],
            "patch check": ["--kernel-src", "x"],
            "flash": ["--device", "x"],
            "mirror": ["-o", "x"],
        }.get(command, [])
        args = parser.parse_args([*command.split(), "--board", str(recipe), *required])
        assert board_from_args(args).source == recipe.resolve(), command
        # a folder holding board.toml is as good as the file
        args = parser.parse_args([*command.split(), "--board", str(recipe.parent), *required])
        assert board_from_args(args).name == "myboard", command
        # the name and --board together are one board too many
        both = parser.parse_args([*command.split(), "vexpress", "--board", str(recipe), *required])
        with pytest.raises(FwgenError, match="two boards given"):
            board_from_args(both)


def test_board_file_reaches_the_command(tmp_path, capsys):
    """fetch --offline with an empty cache names the files of the board it was given."""
    recipe = own_board(tmp_path)
    recipe.write_text(recipe.read_text().replace("linux-6.1.174.tar.xz", "linux-6.1.999.tar.xz"))
    assert main(["fetch", "--board", str(recipe), "--kernel", "6.1", "--offline"]) == 2
    assert "linux-6.1.999.tar.xz" in capsys.readouterr().err
    assert main(["fetch", "--board", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err
    assert main(["fetch"]) == 2
    err = capsys.readouterr().err
    assert "no board given" in err and "fwgen fetch --board FILE" in err


def test_board_path_search_and_a_broken_recipe(tmp_path, monkeypatch):
    boards = tmp_path / "boards"
    own_board(boards)
    broken = boards / "broken" / "board.toml"
    broken.parent.mkdir()
    broken.write_bytes(b'description = "caf\xe9"\n')  # Latin-1, not UTF-8
    env = {**os.environ, "FWGEN_BOARD_PATH": f"{boards}{os.pathsep}{tmp_path / 'empty'}"}
    (tmp_path / "empty").mkdir()
    run = subprocess.run([*FWGEN, "boards"], env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert re.search(r"^myboard: ARM Versatile Express", run.stdout, re.M)
    assert f"  recipe {boards / 'myboard' / 'board.toml'}" in run.stdout
    assert re.search(r"^vexpress: ", run.stdout, re.M)  # fwgen's own are still listed
    assert f"{broken}: not UTF-8 text (byte 0xe9 on line 1)" in run.stderr
    assert "iconv -f LATIN1 -t UTF-8" in run.stderr
    assert "1 board recipe could not be loaded" in run.stderr
    listed = subprocess.run([*FWGEN, "boards", "--json"], env=env, capture_output=True, text=True)
    assert [b["name"] for b in json.loads(listed.stdout)] == ["myboard", "vexpress"]
    # a name on the search path works like fwgen's own names
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(boards))
    assert load_board("myboard").source == boards / "myboard" / "board.toml"
    with pytest.raises(FwgenError, match="not UTF-8"):
        load_board("broken")
    monkeypatch.setenv("FWGEN_BOARD_PATH", str(tmp_path / "missing"))
    with pytest.raises(FwgenError, match="FWGEN_BOARD_PATH names .*missing, which is not a"):
        load_board("vexpress")


def readme_block(heading: str) -> str:
    """The first ```sh block after `heading` in README.md."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(heading) :]
    return after.split("```sh\n", 1)[1].split("\n```", 1)[0] + "\n"


def test_readme_starts_a_board_from_vexpress(tmp_path):
    """README's own commands, run as written from a copy of the checkout (HOME is a temp dir)."""
    script = readme_block("### Your own board")
    checkout = tmp_path / "checkout"
    for name in ("board", "br2-external", "overlays"):
        shutil.copytree(REPO / name, checkout / name)
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fwgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fwgen "$@"\n')
    (bin_dir / "fwgen").chmod(0o755)
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    env.pop("FWGEN_BOARD_PATH", None)
    run = subprocess.run(
        ["bash", "-e", "-c", script], cwd=checkout, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"^myboard: ", run.stdout, re.M), run.stdout
    board = load_board_file(home / "boards" / "myboard" / "board.toml")
    assert board.kernel("4.0").patches_dir().is_relative_to(home / "boards" / "myboard")
    assert board.overlay_dirs()[0].is_relative_to(home / "boards" / "myboard")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["no-such-package"]', "'no-such-package' is not a kernel-module package of br2-external"),
        ('["myevent-source", "myevent-source"]', "a package is named twice"),
        ('["../x"]', "'../x' is not a kernel-module package"),
    ],
)
def test_module_packages_must_be_br2_externals_kernel_module_packages(tmp_path, value, message):
    recipe = own_board(tmp_path)
    text = recipe.read_text()
    old = 'module_packages = ["usermodehelper-demo", "myevent-source"]'
    assert old in text
    recipe.write_text(text.replace(old, f"module_packages = {value}", 1))
    with pytest.raises(FwgenError) as e:
        load_board_file(recipe)
    assert f"{recipe}: key 'module_packages'" in str(e.value) and message in str(e.value)


def test_a_board_may_build_no_module_package(tmp_path):
    recipe = own_board(tmp_path)
    old = 'module_packages = ["usermodehelper-demo", "myevent-source"]'
    recipe.write_text(recipe.read_text().replace(old, "module_packages = []", 1))
    board = load_board_file(recipe)
    assert board.module_packages == ()
    locations = defconfig.Locations.for_output(tmp_path / "out")
    values = defconfig.symbol_values(defconfig.render(board, "4.0", locations))
    assert "BR2_PACKAGE_USERMODEHELPER_DEMO" not in values
