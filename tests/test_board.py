"""Board recipes: the shipped one loads; every kind of bad input names the file and the key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fwgen import paths
from fwgen.board import load_board, load_board_file
from fwgen.cli import main
from fwgen.errors import FwgenError
from tests.conftest import anywhere_recipe

RECIPE = paths.boards_dir() / "vexpress" / "board.toml"


def test_vexpress_recipe_declares_the_pins():
    board = load_board("vexpress")
    assert board.default_kernel == "4.0"
    assert board.buildroot.version == "2025.02.16"
    assert board.kernels["6.1"].version == "6.1.174"
    assert board.kernel(None).file == "linux-4.0.tar.xz"
    assert {d.sha256 for d in board.downloads("6.1")} == {
        "15305e3d366eeaf4a5ecaf2ed42f685fd6af7fe5dbf1f62e1de5f46ee83225e2",
        "ed88346df623ae9150d11b5feb16ddb52c25aef563bb7803ab160bb4493fe06e",
    }
    for kernel in board.kernels.values():
        assert {"SYSCTL=y", "PROC_SYSCTL=y", "MODULES=y", "MODULE_UNLOAD=y"} <= set(
            kernel.requirements
        )


def _variant(tmp_path: Path, edit) -> Path:
    data = tomllib.loads(anywhere_recipe())
    edit(data)
    path = tmp_path / "board.toml"
    path.write_text(_dump(data))
    return path


def _dump(data: dict, prefix: str = "") -> str:
    """A tiny TOML writer for the recipe's shapes (tables, strings, lists, numbers)."""
    lines, tables = [], []
    for key, value in data.items():
        name = key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
        if isinstance(value, dict):
            tables.append((f"{prefix}{name}", value))
        else:
            lines.append(f"{name} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for table, value in tables:
        out += f"\n[{table}]\n" + _dump(value, f"{table}.")
    return out


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda d: d["buildroot"].update(sha256="abc"), "buildroot.sha256", "64 lowercase"),
        (lambda d: d["buildroot"].pop("sha256"), "buildroot.sha256", "missing"),
        (lambda d: d["qemu"].update(colour="red"), "qemu.colour", "unknown key"),
        (lambda d: d["qemu"].update(memory=256), "qemu.memory", "expected a string"),
        (lambda d: d["kernels"]["4.0"].update(urls="x"), 'kernels."4.0".urls', "a list"),
        (
            lambda d: d["kernels"]["6.1"].update(requirements=["CONFIG_SYSCTL=y"]),
            'kernels."6.1".requirements',
            "CONFIG_ prefix",
        ),
        (lambda d: d.update(default_kernel="5.10"), "default_kernel", "not a kernel variant"),
        (lambda d: d["kernels"]["4.0"].update(file="../x.tar"), 'kernels."4.0".file', "plain"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, edit, key, words):
    path = _variant(tmp_path, edit)
    with pytest.raises(FwgenError) as err:
        load_board_file(path)
    text = str(err.value)
    assert f"{path}: key '{key}'" in text or (key == "default_kernel" and str(path) in text)
    assert words in text


def test_round_trip_writer_is_faithful(tmp_path):
    assert load_board_file(_variant(tmp_path, lambda d: None)).kernels.keys() == {"4.0", "6.1"}


def test_unknown_board_and_variant_are_user_errors(capsys):
    assert main(["doctor", "nosuchboard"]) == 2
    assert "unknown board 'nosuchboard'" in capsys.readouterr().err
    with pytest.raises(FwgenError, match="no kernel variant '5.10'"):
        load_board("vexpress").kernel("5.10")


def test_broken_toml_is_a_user_error(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text("description = \n")
    with pytest.raises(FwgenError, match="not valid TOML"):
        load_board_file(path)
