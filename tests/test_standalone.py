"""br2-external's generated configurations for plain Buildroot (fwgen.standalone): in sync with
the recipes, the same Buildroot configuration as fwgen's own builds where nothing forces a
difference, and (gated) accepted by a real Buildroot 2025.02.x tree, with a kernel .config
equal to what fwgen's kconfig stage makes on real 4.0 and 6.1 trees."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import board as board_module
from fwgen import defconfig, kconfig, patches, paths, standalone
from fwgen.board import load_board
from fwgen.errors import FwgenError
from tests.manifests import VEXPRESS_MODULE_PACKAGES

EXTERNAL = paths.br2_external_dir()
VARIABLE = "$(BR2_EXTERNAL_FWGEN_PATH)"
CROSS = "arm-linux-gnueabi-"


def _wanted() -> dict[str, str]:
    return standalone.files(standalone.builtin_boards(), EXTERNAL)


def _expand(value: str) -> str:
    return value.replace(VARIABLE, str(EXTERNAL))


def _standalone_values(variant: str) -> dict[str, str]:
    return defconfig.symbol_values(_wanted()[f"configs/vexpress_{variant}_defconfig"])


def test_the_generated_files_are_in_sync_with_the_recipes():
    stale = standalone.stale(EXTERNAL, _wanted())
    assert stale == [], f"stale in br2-external: {stale}; run `python -m fwgen.standalone`"


def test_a_board_of_the_same_name_on_the_board_path_is_not_generated(tmp_path, monkeypatch):
    mine = tmp_path / "boards" / "vexpress"
    mine.mkdir(parents=True)
    (mine / "board.toml").write_text("this is not the built-in recipe\n")
    monkeypatch.setenv(board_module.BOARD_PATH_VAR, str(tmp_path / "boards"))
    assert [b.source for b in standalone.builtin_boards()] == [
        paths.boards_dir() / "vexpress" / "board.toml"
    ]


def test_a_recipe_change_or_a_stray_file_is_reported(tmp_path):
    external = tmp_path / "br2-external"
    board = load_board("vexpress")
    for rel, text in standalone.files([board], EXTERNAL).items():
        (external / rel).parent.mkdir(parents=True, exist_ok=True)
        (external / rel).write_text(text)
    assert standalone.stale(external, standalone.files([board], EXTERNAL)) == []
    requirements = ("SYSCTL=y", "KPROBES=n", "LOG_BUF_SHIFT=17", 'LOCALVERSION="-fw"')
    variant = dataclasses.replace(board.kernel("4.0"), requirements=requirements)
    changed = dataclasses.replace(board, kernels={**board.kernels, "4.0": variant})
    wanted = standalone.files([changed], EXTERNAL)
    fragment = wanted["configs/vexpress_4.0_linux.fragment"]
    assert fragment.endswith(
        "CONFIG_SYSCTL=y\n# CONFIG_KPROBES is not set\nCONFIG_LOG_BUF_SHIFT=17\n"
        'CONFIG_LOCALVERSION="-fw"\n'
    )
    (external / "configs" / "old_defconfig").write_text("BR2_arm=y\n")
    assert standalone.stale(external, wanted) == [
        "configs/vexpress_4.0_linux.fragment",
        "configs/old_defconfig",
    ]


@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_it_differs_from_fwgens_own_defconfig_only_where_it_must(tmp_path, variant):
    board = load_board("vexpress")
    own = defconfig.symbol_values(
        defconfig.render(board, variant, defconfig.Locations.for_output(tmp_path / "o"))
    )
    alone = _standalone_values(variant)
    # Only fwgen's build has a cache, a job count and its kconfig stage's .config.
    assert sorted(own.keys() - alone.keys()) == [
        "BR2_CCACHE",
        "BR2_CCACHE_DIR",
        "BR2_DL_DIR",
        "BR2_JLEVEL",
        "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE",
        "BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG",
    ]
    assert sorted(alone.keys() - own.keys()) == [
        "BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES",
        "BR2_LINUX_KERNEL_DEFCONFIG",
        "BR2_LINUX_KERNEL_USE_DEFCONFIG",
    ]
    differ = sorted(k for k in own.keys() & alone.keys() if own[k] != alone[k])
    assert differ == [
        "BR2_GLOBAL_PATCH_DIR",
        "BR2_ROOTFS_OVERLAY",
        "BR2_ROOTFS_POST_IMAGE_SCRIPT",
        "BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS",
    ]
    # The recipe's files, named through the external tree instead of absolutely.
    for key in differ[1:]:
        assert _absolute(alone[key]) == own[key], key


def _absolute(value: str) -> str:
    """`value` with each path under $(BR2_EXTERNAL_FWGEN_PATH) written as fwgen writes it."""
    return re.sub(
        re.escape(VARIABLE) + r"/[^\s\"']+",
        lambda m: os.path.normpath(_expand(m.group(0))),
        value,
    )


@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_every_path_it_names_exists(variant):
    values = _standalone_values(variant)
    kernel = load_board("vexpress").kernel(variant)
    for overlay in values["BR2_ROOTFS_OVERLAY"].strip('"').split():
        assert overlay.startswith(f"{VARIABLE}/") and Path(_expand(overlay)).is_dir(), overlay
    named = [
        values["BR2_ROOTFS_POST_IMAGE_SCRIPT"].strip('"'),
        re.search(r"-c (\S+)", values["BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS"]).group(1),
        *values["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"].strip('"').split(),
    ]
    for value in named:
        assert value.startswith(f"{VARIABLE}/"), value
        assert Path(_expand(value)).is_file(), value
    patch_dir = Path(_expand(values["BR2_GLOBAL_PATCH_DIR"].strip('"')))
    series = patches.series(patch_dir / "linux" / kernel.version)
    assert series == patches.series(kernel.patches_dir())
    assert values["BR2_LINUX_KERNEL_DEFCONFIG"] == '"vexpress"'


def test_the_hash_files_hold_every_pin_of_the_recipe():
    board = load_board("vexpress")
    pinned = {}
    for name in board.kernels:
        variant = board.kernel(name)
        pinned[variant.file] = variant.sha256
        pinned.update(variant.license_files)
    for rel in standalone.HASH_FILES:
        lines = [
            line.split()
            for line in (EXTERNAL / rel).read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert {file: digest for _, digest, file in lines} == pinned
        assert {kind for kind, _, _ in lines} == {"sha256"}


def test_a_recipe_it_cannot_express_is_refused_naming_the_key(tmp_path):
    board = load_board("vexpress")
    elsewhere = tmp_path / "series"
    elsewhere.mkdir()
    cases = [
        ("patches", str(elsewhere), "kernels.4.0.patches"),
        ("defconfig", "vexpress_config", "kernels.4.0.defconfig"),
    ]
    for field, value, key in cases:
        variant = dataclasses.replace(board.kernel("4.0"), **{field: value})
        changed = dataclasses.replace(board, kernels={**board.kernels, "4.0": variant})
        with pytest.raises(FwgenError, match=re.escape(f"key '{key}'")) as raised:
            standalone.files([changed], EXTERNAL)
        assert raised.value.exit_code == 2


# --- gated: a real Buildroot tree, real kernel trees -----------------------------------------


def _make(tree: Path, *args: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BR2_", "MAKE"))}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(tree), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.mark.gated
@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_plain_buildroot_takes_the_defconfig_line_for_line(br_tree, tmp_path, variant):
    """What a Buildroot user types, in a real Buildroot 2025.02.x tree."""
    out = tmp_path / "out"
    _make(br_tree, f"O={out}", f"BR2_EXTERNAL={EXTERNAL}", f"vexpress_{variant}_defconfig")
    text = (EXTERNAL / "configs" / f"vexpress_{variant}_defconfig").read_text()
    dropped = defconfig.dropped_lines(text, out / ".config")
    assert dropped == [], defconfig.describe_dropped(dropped, out / ".config")
    if variant != "4.0":
        return
    # Buildroot finds the recipe's series and the pins through BR2_GLOBAL_PATCH_DIR.
    info = json.loads(_make(br_tree, "-s", f"O={out}", "show-info"))
    series = patches.series(load_board("vexpress").kernel("4.0").patches_dir())
    assert {str((out / p).resolve()) for p in info["linux"]["patches"]} == {
        str(p.resolve()) for p in series
    }
    hashes = [str((out / h).resolve()) for h in info["linux"]["hashes"]]
    assert str(EXTERNAL.resolve() / "patches/linux/linux.hash") in hashes
    assert info["linux-headers"]["hashes"][-1].endswith("patches/linux-headers/linux-headers.hash")
    for package in VEXPRESS_MODULE_PACKAGES:
        assert "linux" in info[package]["dependencies"]


def _config_values(path: Path) -> set[str]:
    """The symbols set to something other than n. Unset and `is not set` are the same value;
    linux-4.0's own conf writes `is not set` (and DEFCONFIG_LIST) for symbols without a
    prompt, kconfiglib does not."""
    keep = re.compile(r"^CONFIG_(?!DEFCONFIG_LIST=)\w+=.*$")
    return {line for line in path.read_text().splitlines() if keep.match(line)}


@pytest.mark.gated
@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_buildroot_makes_the_same_kernel_config_as_fwgens_kconfig_stage(
    request, br_tree, tmp_path, variant
):
    """Buildroot's way (the kernel's defconfig, then support/kconfig/merge_config.sh with
    the board's fragment and the generated requirements, then olddefconfig) against fwgen's
    kconfig stage, on a real tree of each kernel (6.1: Debian's 6.1 tree, not the pinned
    6.1.174) with the same cross compiler."""
    if shutil.which(f"{CROSS}gcc") is None:
        pytest.skip(f"{CROSS}gcc is missing: apt-get install gcc-arm-linux-gnueabi")
    src = request.getfixturevalue("linux40_src" if variant == "4.0" else "linux61_src")
    kernel = load_board("vexpress").kernel(variant)
    out = tmp_path / "kbuild"
    out.mkdir()
    make = [f"O={out}", "ARCH=arm", f"CROSS_COMPILE={CROSS}"]
    _make(src, *make, kernel.defconfig)
    values = _standalone_values(variant)
    fragments = [
        _expand(f) for f in values["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"].strip('"').split()
    ]
    subprocess.run(
        [
            str(br_tree / "support/kconfig/merge_config.sh"),
            "-m",
            "-O",
            str(out),
            str(out / ".config"),
            *fragments,
        ],
        check=True,
        capture_output=True,
    )
    _make(src, *make, "olddefconfig")
    fwgen_config = tmp_path / "fwgen.config"
    kconfig.configure_variant(kernel, src, cross_compile=CROSS).write(fwgen_config)
    buildroot, fwgen = _config_values(out / ".config"), _config_values(fwgen_config)
    assert buildroot == fwgen, (
        f"only in Buildroot's: {sorted(buildroot - fwgen)}\n"
        f"only in fwgen's: {sorted(fwgen - buildroot)}"
    )
