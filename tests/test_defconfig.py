"""The Buildroot defconfig rendered from the vexpress recipe, and the external tree's files."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import pytest

from fwgen import defconfig, modules, patches, paths, standalone
from fwgen.board import load_board, load_board_file
from fwgen.errors import FwgenError
from fwgen.recipe import RecipeError
from tests.conftest import anywhere_recipe
from tests.manifests import VEXPRESS_MODULE_PACKAGES

REPO = Path(__file__).resolve().parent.parent
EXTERNAL = REPO / "br2-external"


def _render(variant: str | None = None, tmp: Path = Path("/nonexistent/out"), **kw) -> str:
    board = load_board("vexpress")
    return defconfig.render(board, variant, defconfig.Locations.for_output(tmp), **kw)


def _values(text: str) -> dict[str, str]:
    return defconfig.symbol_values(text)


def test_the_40_defconfig_has_every_setting_the_build_needs(isolated_env):
    values = _values(_render("4.0"))
    expected = {
        "BR2_arm": "y",
        "BR2_cortex_a9": "y",
        "BR2_ARM_ENABLE_VFP": "y",
        "BR2_GCC_VERSION_12_X": "y",
        "BR2_KERNEL_HEADERS_AS_KERNEL": "y",
        "BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_4_0": "y",
        "BR2_LINUX_KERNEL": "y",
        "BR2_LINUX_KERNEL_CUSTOM_VERSION": "y",
        "BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE": '"4.0"',
        "BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG": "y",
        "BR2_LINUX_KERNEL_ZIMAGE": "y",
        "BR2_LINUX_KERNEL_DTS_SUPPORT": "y",
        "BR2_LINUX_KERNEL_INTREE_DTS_NAME": '"vexpress-v2p-ca9"',
        "BR2_LINUX_KERNEL_LICENSE_FILES": '"./COPYING"',
        "BR2_PACKAGE_USERMODEHELPER_DEMO": "y",
        "BR2_PACKAGE_MYEVENT_SOURCE": "y",
        "BR2_TARGET_ROOTFS_EXT2": "y",
        "BR2_TARGET_ROOTFS_EXT2_2r1": "y",
        "BR2_TARGET_ROOTFS_EXT2_SIZE": '"64M"',
        "BR2_TARGET_ROOTFS_TAR": "n",
        "BR2_PACKAGE_HOST_GENIMAGE": "y",
        "BR2_PACKAGE_HOST_BMAP_TOOLS": "y",
        "BR2_TARGET_GENERIC_GETTY_PORT": '"ttyAMA0"',
        "BR2_CCACHE": "y",
        "BR2_JLEVEL": "0",
        "BR2_REPRODUCIBLE": "y",
        "BR2_DOWNLOAD_FORCE_CHECK_HASHES": "y",
    }
    assert {k: values.get(k) for k in expected} == expected
    assert "BR2_PRIMARY_SITE" not in values


def test_paths_are_absolute_and_come_from_fwgen_paths(isolated_env, tmp_path):
    out = tmp_path / "build" / "vexpress-4.0"
    values = _values(_render("4.0", out))
    cache = Path(os.environ["FWGEN_CACHE_DIR"])
    assert values["BR2_DL_DIR"] == f'"{cache / "buildroot-dl"}"'
    assert values["BR2_CCACHE_DIR"] == f'"{cache / "ccache"}"'
    assert values["BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE"] == f'"{out / "fwgen" / "linux.config"}"'
    assert values["BR2_GLOBAL_PATCH_DIR"] == f'"{out / "fwgen" / "global-patch-dir"}"'
    assert values["BR2_ROOTFS_OVERLAY"] == f'"{paths.overlays_dir() / "common"}"'
    script = paths.boards_dir() / "vexpress" / "post-image.sh"
    assert values["BR2_ROOTFS_POST_IMAGE_SCRIPT"] == f'"{script}"'
    for symbol in (
        "BR2_DL_DIR",
        "BR2_CCACHE_DIR",
        "BR2_GLOBAL_PATCH_DIR",
        "BR2_ROOTFS_OVERLAY",
        "BR2_ROOTFS_POST_IMAGE_SCRIPT",
        "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE",
    ):
        assert values[symbol].startswith('"/'), symbol


def test_post_image_arguments_carry_genimage_and_the_qemu_command(isolated_env):
    args = _values(_render("4.0"))["BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS"]
    genimage = paths.boards_dir() / "vexpress" / "genimage.cfg"
    assert args == (
        f'"-c {genimage} -k zImage -d vexpress-v2p-ca9.dtb -M vexpress-a9 -m 256M '
        "-q qemu-system-arm -a 'console=ttyAMA0,115200 root=/dev/mmcblk0 rootwait' "
        "-x '-smp 1 -nographic -audiodev none,id=snd0 -global pl041.audiodev=snd0'\""
    )


def test_the_61_variant_renders_a_61_configuration(isolated_env):
    values = _values(_render("6.1"))
    assert values["BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_6_1"] == "y"
    assert "BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_4_0" not in values
    assert values["BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE"] == '"6.1.174"'
    # Buildroot's default license list (COPYING + LICENSES/...) fits 6.1: no override.
    assert "BR2_LINUX_KERNEL_LICENSE_FILES" not in values
    assert values["BR2_GCC_VERSION_12_X"] == "y"


def test_mirror_and_jobs(isolated_env):
    values = _values(_render("4.0", jobs=3, primary_site="http://mirror.example/br/"))
    assert values["BR2_PRIMARY_SITE"] == '"http://mirror.example/br"'
    assert values["BR2_JLEVEL"] == "3"
    with pytest.raises(FwgenError, match="negative"):
        _render("4.0", jobs=-1)


def test_rendering_is_deterministic_and_lists_only_config_lines(isolated_env):
    first, second = _render("4.0"), _render("4.0")
    assert first == second
    for line in defconfig.requested_lines(first):
        assert re.match(r"^(BR2_\w+=.+|# BR2_\w+ is not set)$", line)
    assert len(defconfig.requested_lines(first)) == len(_values(first))


def test_an_unknown_variant_is_refused(isolated_env):
    with pytest.raises(FwgenError, match="no kernel variant '9.9'"):
        _render("9.9")


def test_kconfig_string_escaping():
    assert defconfig.kconfig_string('a "b" \\c') == '"a \\"b\\" \\\\c"'


def test_headers_series():
    assert defconfig.headers_series("4.0") == "4_0"
    assert defconfig.headers_series("6.1.174") == "6_1"
    with pytest.raises(FwgenError):
        defconfig.headers_series("latest")


def test_unsafe_qemu_values_are_refused(isolated_env):
    board = load_board("vexpress")
    bad = dataclasses.replace(board.qemu, sd_append="console=ttyAMA0 init='/bin/sh'")
    object.__setattr__(board, "qemu", bad)
    with pytest.raises(FwgenError, match="qemu.sd_append"):
        defconfig.render(board, "4.0", defconfig.Locations.for_output(Path("/o")))


def _recipe_with(tmp_path: Path, old: str, new: str) -> Path:
    text = anywhere_recipe()
    assert old in text
    path = tmp_path / "vexpress" / "board.toml"
    path.parent.mkdir()
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('rootfs_size = "64M"', 'rootfs_size = "60M"', "power of two"),
        ('rootfs_size = "64M"', 'rootfs_size = "64MB"', "size like 64M"),
        ('gcc = "12"', 'gcc = "12.5"', "GCC major version"),
        ('kernel_image = "zImage"', 'kernel_image = "bzImage"', "must be one of"),
        ('"BR2_cortex_a9=y"', '"cortex_a9=y"', "not a Buildroot line"),
        ('getty_port = "ttyAMA0"', 'getty_port = "/dev/ttyAMA0"', "tty name"),
    ],
)
def test_recipe_checks_the_buildroot_fields(tmp_path, old, new, message):
    path = _recipe_with(tmp_path, old, new)
    with pytest.raises(RecipeError, match=message) as info:
        load_board_file(path)
    assert str(path) in str(info.value)


def test_unknown_buildroot_keys_are_refused(tmp_path):
    path = _recipe_with(tmp_path, 'gcc = "12"', 'gcc = "12"\ngcc_version = "12"')
    with pytest.raises(RecipeError, match="buildroot.gcc_version': unknown key"):
        load_board_file(path)


# --- proving that lines survived --------------------------------------------------------


def test_dropped_lines_and_their_description(tmp_path):
    text = 'BR2_arm=y\nBR2_FOO="x"\n# BR2_BAR is not set\nBR2_GONE=y\n# a comment\n'
    config = tmp_path / ".config"
    config.write_text('BR2_arm=y\nBR2_FOO="y"\nBR2_BAR=y\n')
    dropped = defconfig.dropped_lines(text, config)
    assert dropped == ['BR2_FOO="x"', "# BR2_BAR is not set", "BR2_GONE=y"]
    described = defconfig.describe_dropped(dropped, config)
    assert 'BR2_FOO="x"    (the .config has: BR2_FOO="y")' in described
    assert "# BR2_BAR is not set    (the .config has: BR2_BAR=y)" in described
    assert "BR2_GONE=y    (the .config has no BR2_GONE" in described


def test_dropped_lines_without_a_config(tmp_path):
    with pytest.raises(FwgenError, match="missing after `make defconfig`"):
        defconfig.dropped_lines("BR2_arm=y\n", tmp_path / ".config")


def test_write_if_changed_keeps_an_unchanged_file_and_its_mtime(tmp_path):
    path = tmp_path / "sub" / "linux.config"
    assert defconfig.write_if_changed(path, "A\n") is True
    old = time.time() - 1000
    os.utime(path, (old, old))
    assert defconfig.write_if_changed(path, "A\n") is False
    assert path.stat().st_mtime == pytest.approx(old)
    assert defconfig.write_if_changed(path, "B\n") is True
    assert path.read_text() == "B\n"
    assert [p.name for p in path.parent.iterdir()] == ["linux.config"]


# --- the external tree -------------------------------------------------------------------


def test_external_tree_is_named_fwgen_and_includes_its_packages():
    desc = (EXTERNAL / "external.desc").read_text()
    assert re.search(r"^name: FWGEN$", desc, re.MULTILINE)
    config_in = (EXTERNAL / "Config.in").read_text()
    for package in sorted(p.name for p in (EXTERNAL / "package").iterdir()):
        assert f'source "$BR2_EXTERNAL_FWGEN_PATH/package/{package}/Config.in"' in config_in
    assert "$(BR2_EXTERNAL_FWGEN_PATH)/package/*/*.mk" in (EXTERNAL / "external.mk").read_text()


def test_every_kernel_module_package_is_listed_and_enabled(isolated_env):
    """fwgen.VEXPRESS_MODULE_PACKAGES is what both build paths build and the planner rebuilds: it
    must name exactly the external tree's kernel-module packages, each enabled."""
    found = sorted(
        mk.parent.name
        for mk in (EXTERNAL / "package").glob("*/*.mk")
        if "$(eval $(kernel-module))" in mk.read_text()
    )
    assert sorted(VEXPRESS_MODULE_PACKAGES) == found
    values = _values(_render("4.0"))
    for package in VEXPRESS_MODULE_PACKAGES:
        assert values.get(f"BR2_PACKAGE_{package.upper().replace('-', '_')}") == "y"


@pytest.mark.parametrize("package", VEXPRESS_MODULE_PACKAGES)
def test_module_package_is_a_local_kernel_module_package(package):
    pkg = EXTERNAL / "package" / package
    var = package.upper().replace("-", "_")
    mk = (pkg / f"{package}.mk").read_text()
    assert f"{var}_SITE = $(BR2_EXTERNAL_FWGEN_PATH)/package/{package}/src" in mk
    assert f"{var}_SITE_METHOD = local" in mk
    assert f"{var}_LICENSE = GPL-2.0" in mk
    assert mk.index("$(eval $(kernel-module))") < mk.index("$(eval $(generic-package))")
    config = (pkg / "Config.in").read_text()
    assert f"config BR2_PACKAGE_{var}" in config
    assert "depends on BR2_LINUX_KERNEL" in config
    assert modules.module_names(package) == [package.replace("-", "_")]


def _hashes(path: Path) -> dict[str, str]:
    return _hashes_text(path.read_text())


def _hashes_text(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            kind, digest, name = line.split()
            assert kind == "sha256"
            out[name] = digest
    return out


def test_the_global_patch_dir_holds_the_recipes_series_pin_and_license_hashes():
    board = load_board("vexpress")
    for name, variant in board.kernels.items():
        files = defconfig.global_patch_files(board, name)
        series = patches.series(variant.patches_dir())
        version_dir = f"linux/{variant.version}"
        for patch in series:
            assert files[f"{version_dir}/{patch.name}"] == patch.read_bytes()
        assert files[f"{version_dir}/series"].decode().split() == [p.name for p in series]
        hashes = files["linux/linux.hash"]
        assert files["linux-headers/linux-headers.hash"] == hashes
        assert _hashes_text(hashes.decode()) == {
            variant.file: variant.sha256,
            **variant.license_files,
        }
    # The 4.0 COPYING (see tests in test_buildroot_real.py for why "./COPYING").
    assert board.kernel("4.0").license_files == {
        "./COPYING": "af8067302947c01fd9eee72befa54c7e3ef8a48fecde7fd71277f2290b2bf0f7"
    }
    # No other hash file in the external tree can disagree with the recipe: the only ones are
    # the generated ones for plain Buildroot, which tests/test_standalone.py keeps equal to it.
    found = sorted(p.relative_to(EXTERNAL).as_posix() for p in EXTERNAL.rglob("*.hash"))
    assert found == sorted(standalone.HASH_FILES)


def test_the_written_patch_dir_follows_the_recipe_and_drops_what_it_no_longer_has(tmp_path):
    board = load_board("vexpress")
    variant = board.kernel("4.0")
    series = tmp_path / "series"
    series.mkdir()
    for patch in patches.series(variant.patches_dir())[:2]:
        (series / patch.name).write_bytes(patch.read_bytes())
    swapped = dataclasses.replace(variant, sha256="f" * 64, patches=str(series))
    other = dataclasses.replace(board, kernels={**board.kernels, "4.0": swapped})
    object.__setattr__(other, "name", board.name)
    object.__setattr__(other, "source", board.source)
    out = tmp_path / "global-patch-dir"
    defconfig.write_global_patch_dir(out, board, "4.0")
    kept = out / "linux" / "4.0" / sorted(series.iterdir())[0].name
    before = kept.stat().st_mtime_ns
    time.sleep(0.01)
    defconfig.write_global_patch_dir(out, other, "4.0")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(
        [f"linux/4.0/{p.name}" for p in series.iterdir()]
        + ["linux/4.0/series", "linux/linux.hash", "linux-headers/linux-headers.hash"]
    )
    assert kept.stat().st_mtime_ns == before  # unchanged content, untouched file
    text = (out / "linux" / "linux.hash").read_text()
    assert _hashes_text(text)["linux-4.0.tar.xz"] == "f" * 64


def test_board_files_exist_and_post_image_is_executable():
    board = load_board("vexpress")
    script = board.buildroot.post_image_path()
    assert script is not None and os.access(script, os.X_OK)
    genimage = board.buildroot.genimage_path()
    assert genimage is not None
    text = genimage.read_text()
    assert 'partition-table-type = "none"' in text
    assert 'image = "rootfs.ext2"' in text


def test_paths_buildroot_cannot_use_are_refused(isolated_env, tmp_path):
    with pytest.raises(FwgenError, match="cannot use a path with blanks"):
        _render("4.0", tmp_path / "my build")
