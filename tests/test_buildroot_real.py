"""fwgen's Buildroot configuration against a real Buildroot 2025.02.x tree (gated).

Set FWGEN_TEST_BUILDROOT_SRC to a Buildroot 2025.02.x tree or release tarball, and for the
kernel tests FWGEN_TEST_LINUX40_SRC to a pristine linux-4.0 tree or tarball. Optional:
FWGEN_TEST_BUILDROOT_DL, a Buildroot download directory (e.g. with tar/tar-1.35.cpio.gz).

No toolchain is built and nothing is downloaded: these tests stop where Buildroot would need
the network. What they prove:
- the external tree loads, and the rendered 4.0 and 6.1 defconfigs survive olddefconfig
  line for line (Buildroot's own is_defconfig_valid rule);
- `make show-info` lists the kernel at 4.0 with the series from fwgen's global patch
  directory, fwgen's hash files, and the kernel-module packages (usermodehelper-demo,
  myevent-source) depending on linux;
- with a linux-4.0 tarball in the download directory, `make linux-patch` downloads nothing,
  checks the tarball against the pin fwgen writes from the recipe
  (BR2_DOWNLOAD_FORCE_CHECK_HASHES=y) and applies the series with Buildroot's own patch
  machinery, with the same result as fwgen's patch stage; `make linux-legal-info` accepts
  the 4.0 license file;
- board/vexpress/post-image.sh makes sdcard.img (+ .bmap) and start-qemu.sh through
  Buildroot's support/scripts/genimage.sh.

A linux-4.0 tarball made from a tree has another sha256 than kernel.org's: the tests then
swap the 4.0 pin of a copy of the recipe for the tarball's real sha256 (everything else
identical); fwgen writes the pin into Buildroot's hash files, so Buildroot's hash check still
runs and must pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import brtree, defconfig, fsutil, kerneltree, patches, paths
from fwgen.board import Board, load_board
from tests.conftest import gated_tree
from tests.manifests import VEXPRESS_MODULE_PACKAGES

pytestmark = pytest.mark.gated

REPO = Path(__file__).resolve().parent.parent
PROVES_LINUX = "`make linux-patch` applies the series through Buildroot's own patch machinery"


@pytest.fixture(scope="module")
def linux40_tarball(tmp_path_factory) -> Path:
    given = gated_tree("FWGEN_TEST_LINUX40_SRC", PROVES_LINUX)
    if given.is_file():
        return given
    out = tmp_path_factory.mktemp("linux-tarball") / "linux-4.0.tar.xz"
    tar = subprocess.Popen(
        ["tar", "-C", str(given.parent), "-cf", "-", given.name], stdout=subprocess.PIPE
    )
    with out.open("wb") as f:
        subprocess.run(["xz", "-1", "-T0"], stdin=tar.stdout, stdout=f, check=True)
    assert tar.wait() == 0
    if given.name != "linux-4.0":
        pytest.fail(f"FWGEN_TEST_LINUX40_SRC must be named linux-4.0 (got {given.name})")
    return out


def _make(tree: Path, out: Path, *args: str, check: bool = True, timeout: int = 600) -> str:
    cmd = ["make", "--no-print-directory", "-C", str(tree), f"O={out}", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BR2_", "MAKE"))}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc.stdout + proc.stderr


def _configure(tree: Path, out: Path, variant: str, dl: Path, board: Board | None = None) -> str:
    """Render the vexpress defconfig for `variant` into `out`, write the kernel pin's hash
    files as fwgen build does, and run `make defconfig`."""
    board = board or load_board("vexpress")
    locations = defconfig.Locations(
        kernel_config=out / "fwgen" / "linux.config",
        dl_dir=dl,
        ccache_dir=out / "ccache",
        patch_dir=out / "fwgen" / "global-patch-dir",
    )
    text = defconfig.render(board, variant, locations)
    (out / "fwgen").mkdir(parents=True)
    defconfig.write_global_patch_dir(locations.patch_dir, board, variant)
    locations.kernel_config.write_text("# placeholder: not read before linux-configure\n")
    rendered = out / "fwgen" / "defconfig"
    rendered.write_text(text)
    external = paths.br2_external_dir()
    _make(tree, out, f"BR2_EXTERNAL={external}", f"BR2_DEFCONFIG={rendered}", "defconfig")
    return text


@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_external_tree_loads_and_every_line_survives(br_tree, tmp_path, variant):
    out = tmp_path / "out"
    text = _configure(br_tree, out, variant, tmp_path / "dl")
    assert defconfig.dropped_lines(text, out / ".config") == []
    external_mk = (out / ".br2-external.mk").read_text()
    assert f"BR2_EXTERNAL_FWGEN_PATH = {paths.br2_external_dir()}" in external_mk
    # Buildroot's choices that follow from ours.
    config = (out / ".config").read_text()
    assert "BR2_ARM_EABIHF=y" in config
    assert "BR2_TOOLCHAIN_BUILDROOT_GLIBC=y" in config


def test_show_info_lists_kernel_40_with_the_series_and_the_module(br_tree, tmp_path):
    out = tmp_path / "out"
    _configure(br_tree, out, "4.0", tmp_path / "dl")
    info = json.loads(_show_info(br_tree, out))
    linux = info["linux"]
    assert linux["version"] == "4.0"
    assert linux["downloads"][0]["source"] == "linux-4.0.tar.xz"
    variant = load_board("vexpress").kernel("4.0")
    series = patches.series(variant.patches_dir())
    assert series, f"{variant.patches_dir()} holds no patches"
    patch_dir = out / "fwgen" / "global-patch-dir"
    # show-info names paths inside the output directory relative to it.
    listed = {str(out / p) if not p.startswith("/") else p for p in linux["patches"]}
    assert listed == {str(patch_dir / "linux" / "4.0" / p.name) for p in series}
    assert linux["hashes"] == ["linux/linux.hash", str(patch_dir / "linux" / "linux.hash")]
    assert linux["license_files"] == ["./COPYING"]
    headers = info["linux-headers"]
    assert headers["version"] == "4.0"
    assert headers["patches"] == []  # the series is under linux/4.0/, which headers ignore
    assert headers["hashes"][-1] == str(patch_dir / "linux-headers" / "linux-headers.hash")
    for package in VEXPRESS_MODULE_PACKAGES:
        module = info[package]
        assert module["package_dir"] == str(paths.br2_external_dir() / "package" / package)
        assert "linux" in module["dependencies"]
        assert module["downloads"] == []
    assert {"host-genimage", "host-bmap-tools", "host-e2fsprogs", "rootfs-ext2"} <= set(info)


def _show_info(tree: Path, out: Path) -> str:
    cmd = ["make", "-s", "--no-print-directory", "-C", str(tree), f"O={out}", "show-info"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout


def _host_tar_suitable(tree: Path) -> bool:
    script = tree / "support" / "dependencies" / "check-host-tar.sh"
    found = subprocess.run([str(script), "tar"], capture_output=True, text=True).stdout
    return bool(found.strip())


def _tar_overrides(tree: Path, dl: Path) -> list[str]:
    """Make arguments that let linux-extract run offline on this host.

    Buildroot 2025.02 wants GNU tar >= 1.35 on the host, else it builds host-tar from
    tar-1.35.cpio.gz, a download. Debian 12 has tar 1.34. Unless that file is in
    $FWGEN_TEST_BUILDROOT_DL, the host's tar stands in for extraction (1.35 matters for
    reproducible tarballs of VCS downloads, not for extracting a release tarball).
    """
    if _host_tar_suitable(tree):
        return []
    given = os.environ.get("FWGEN_TEST_BUILDROOT_DL")
    if given and (Path(given) / "tar" / "tar-1.35.cpio.gz").is_file():
        (dl / "tar").mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(given) / "tar" / "tar-1.35.cpio.gz", dl / "tar")
        return []
    print("host tar < 1.35 and no tar-1.35.cpio.gz: extracting with the host's tar")
    return ["BR2_TAR_HOST_DEPENDENCY=", f"TAR={shutil.which('tar')}"]


def _board_for(tarball: Path) -> Board:
    """The vexpress recipe, its 4.0 pin swapped for the tarball's sha256 if it is not
    kernel.org's (a tree import): Buildroot's hash check then runs against the real value."""
    board = load_board("vexpress")
    variant = board.kernel("4.0")
    actual = fsutil.sha256_file(tarball)
    if actual == variant.sha256:
        return board
    print(f"{tarball.name} is not kernel.org's (sha256 {actual}): swapping the 4.0 pin")
    swapped = dataclasses.replace(
        board, kernels={**board.kernels, "4.0": dataclasses.replace(variant, sha256=actual)}
    )
    object.__setattr__(swapped, "name", board.name)
    object.__setattr__(swapped, "source", board.source)
    return swapped


def _touched(patch: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\+\+\+ b/(\S+)", patch.read_text(), re.M)]


def test_linux_patch_applies_the_series_with_buildroots_machinery(
    br_tree, linux40_tarball, tmp_path
):
    out, dl = tmp_path / "out", tmp_path / "dl"
    _configure(br_tree, out, "4.0", dl, _board_for(linux40_tarball))
    brtree.place_kernel_tarball(linux40_tarball, dl)  # what fwgen build does
    extra = _tar_overrides(br_tree, dl)
    log = _make(br_tree, out, *extra, "linux-patch")
    assert "linux-4.0.tar.xz: OK (sha256:" in log  # Buildroot checked fwgen's hash file
    assert "Downloading" not in log
    series = patches.series(load_board("vexpress").kernel("4.0").patches_dir())
    applied = re.findall(r"^Applying (\S+) using series", log, re.M)
    assert applied == [p.name for p in series]
    build = out / "build" / "linux-4.0"
    assert (build / ".stamp_patched").exists()

    # Same result as fwgen's own patch stage, file by file (Buildroot's dtc hook aside).
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    subprocess.run(["tar", "-xf", str(linux40_tarball), "-C", str(pristine)], check=True)
    tree = pristine / "linux-4.0"
    patches.apply_series(tree, series[0].parent)
    files = sorted({f for p in series for f in _touched(p) if not f.startswith("scripts/dtc/")})
    assert files
    for rel in files:
        assert (build / rel).read_bytes() == (tree / rel).read_bytes(), rel

    # legal-info: the 4.0 COPYING passes as ./COPYING (fwgen's hash file) ...
    legal = _make(br_tree, out, *extra, "linux-legal-info")
    assert (
        "./COPYING: OK (sha256: af8067302947c01fd9eee72befa54c7e3ef8a48fecde7fd71277f2290b2bf0f7)"
        in legal
    )
    # ... while the plain name hits Buildroot's own linux/linux.hash (the modern COPYING):
    # the reason the recipe says ./COPYING.
    config = out / ".config"
    text = config.read_text().replace(
        'BR2_LINUX_KERNEL_LICENSE_FILES="./COPYING"', 'BR2_LINUX_KERNEL_LICENSE_FILES="COPYING"'
    )
    config.write_text(text)
    _make(br_tree, out, "olddefconfig")
    plain = _make(br_tree, out, *extra, "linux-legal-info", check=False)
    assert "ERROR: while checking hashes from linux/linux.hash" in plain


def test_a_series_edit_updates_buildroots_patched_kernel_tree_in_place(
    br_tree, linux40_tarball, tmp_path
):
    """What `fwgen build` does instead of linux-dirclean when only the series changed: the
    kernel build directory Buildroot patched is brought to the new series in place
    (buildroot.update_kernel_series -> kerneltree.update with the old series), rewriting only
    the files that differ. The result must equal what Buildroot's own `make linux-patch` makes
    from the new series, file for file."""
    board = _board_for(linux40_tarball)
    dl = tmp_path / "dl"
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    for out in (kept, fresh):
        _configure(br_tree, out, "4.0", dl, board)
    brtree.place_kernel_tarball(linux40_tarball, dl)
    extra = _tar_overrides(br_tree, dl)
    _make(br_tree, kept, *extra, "linux-patch")

    # The new series: one added line of a feature patch changed, as a developer edits it.
    old_series = kept / "fwgen" / "global-patch-dir" / "linux" / "4.0"
    new_series = fresh / "fwgen" / "global-patch-dir" / "linux" / "4.0"
    line = '+\t\tpr_err("mykthread'
    feature = next(p for p in sorted(new_series.glob("*.patch")) if line in p.read_text())
    text = feature.read_text()
    edited = text.replace('pr_err("mykthread', 'pr_err("mykthread (edited)', 1)
    assert edited != text
    feature.write_text(edited)
    _make(br_tree, fresh, *extra, "linux-patch")

    build = kept / "build" / "linux-4.0"
    before = {p: p.stat().st_mtime_ns for p in build.rglob("*") if p.is_file()}
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    subprocess.run(["tar", "-xf", str(linux40_tarball), "-C", str(pristine)], check=True)
    changed = kerneltree.update(pristine / "linux-4.0", build, new_series, old_series=old_series)

    assert changed == ["init/main.c"]
    moved = sorted(
        p.relative_to(build).as_posix()
        for p, mtime in before.items()
        if p.exists() and p.stat().st_mtime_ns != mtime
    )
    assert moved == ["init/main.c"]
    assert "mykthread (edited)" in (build / "init" / "main.c").read_text()
    bookkeeping = [".stamp_*", ".applied_patches_list", ".files-list*"]
    diff = subprocess.run(
        [
            "diff",
            "-rq",
            *(f"-x{x}" for x in bookkeeping),
            str(build),
            str(fresh / "build" / "linux-4.0"),
        ],
        capture_output=True,
        text=True,
    )
    assert diff.returncode == 0, diff.stdout[-3000:]


# --- the post-image script ----------------------------------------------------------------


def _need(*programs: str) -> None:
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH (apt-get install genimage bmap-tools)")


def _images_dir(tmp_path: Path, rootfs_mb: int) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    rootfs = images / "rootfs.ext2"
    subprocess.run(["truncate", "-s", f"{rootfs_mb}M", str(rootfs)], check=True)
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-r", "1", "-F", str(rootfs)], check=True)
    (images / "zImage").write_bytes(b"kernel")
    (images / "vexpress-v2p-ca9.dtb").write_bytes(b"\xd0\x0d\xfe\xed")
    return images


def _post_image(tree: Path, tmp_path: Path, images: Path, bmap_tools: bool):
    board = load_board("vexpress")
    args = shlex.split(defconfig.post_image_args(board, "4.0"))  # as Buildroot's shell does
    br2_config = tmp_path / ".config"
    br2_config.write_text("BR2_PACKAGE_HOST_BMAP_TOOLS=y\n" if bmap_tools else "")
    env = {
        **os.environ,
        "BINARIES_DIR": str(images),
        "BUILD_DIR": str(tmp_path / "build"),
        "BR2_CONFIG": str(br2_config),
    }
    (tmp_path / "build").mkdir(exist_ok=True)
    script = board.buildroot.post_image_path()
    return subprocess.run(
        [str(script), str(images), *args], cwd=tree, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("bmap_tools", [True, False])
def test_post_image_writes_the_sd_card_bmap_and_start_script(br_tree, tmp_path, bmap_tools):
    _need("genimage", "bmaptool", "mke2fs")
    images = _images_dir(tmp_path, 8)
    result = _post_image(br_tree, tmp_path, images, bmap_tools)
    assert result.returncode == 0, result.stdout + result.stderr
    card = images / "sdcard.img"
    assert card.read_bytes() == (images / "rootfs.ext2").read_bytes()  # the whole card
    assert (images / "sdcard.img.bmap").read_text().lstrip().startswith("<?xml")
    start = images / "start-qemu.sh"
    assert os.access(start, os.X_OK)
    text = start.read_text()
    assert (
        "exec qemu-system-arm -M vexpress-a9 -m 256M -kernel zImage -dtb vexpress-v2p-ca9.dtb "
        "-drive file=sdcard.img,if=sd,format=raw "
        "-append 'console=ttyAMA0,115200 root=/dev/mmcblk0 rootwait' -smp 1 -nographic "
        '-audiodev none,id=snd0 -global pl041.audiodev=snd0 "$@"'
    ) in text
    subprocess.run(["sh", "-n", str(start)], check=True)


def test_post_image_refuses_a_card_that_is_not_a_power_of_two(br_tree, tmp_path):
    _need("genimage", "mke2fs")
    images = _images_dir(tmp_path, 3)
    result = _post_image(br_tree, tmp_path, images, bmap_tools=False)
    assert result.returncode != 0
    assert "not a power of two" in result.stderr


# --- fwgen build itself, up to Buildroot's first download --------------------------------------


def test_fwgen_build_runs_real_buildroot_up_to_its_first_download(
    br_tree, linux40_tarball, tmp_path, monkeypatch, capsys
):
    """The whole pipeline with real Buildroot and a real linux-4.0, until the network is needed.

    fetch (from the cache) -> render -> make defconfig -> every line survives -> show-info ->
    `make toolchain` starts for real (host-skeleton, host-fakedate) and stops at the first
    download, reported with package and step. The data
    root is a copy of the real one whose 4.0 pin names this tarball; BR2_PRIMARY_SITE_ONLY
    with an empty file:// site guarantees that Buildroot uses no network.
    """
    from fwgen import cli, doctor

    data = tmp_path / "data"
    for name in ("board", "br2-external", "overlays"):
        shutil.copytree(paths.data_root() / name, data / name, symlinks=True)
    variant = load_board("vexpress").kernel("4.0")
    actual = fsutil.sha256_file(linux40_tarball)
    recipe = data / "board" / "vexpress" / "board.toml"
    nowhere = tmp_path / "no-sources"
    nowhere.mkdir()
    text = recipe.read_text().replace(variant.sha256, actual)
    text = text.replace(
        'genimage_config = "genimage.cfg"\n',
        'genimage_config = "genimage.cfg"\n'
        f'extra = [\'BR2_PRIMARY_SITE="file://{nowhere}"\', "BR2_PRIMARY_SITE_ONLY=y"]\n',
    )
    recipe.write_text(text)
    cache = paths.cache_dir()
    (cache / "dl").mkdir(parents=True, exist_ok=True)
    shutil.copy2(linux40_tarball, cache / "dl" / "linux-4.0.tar.xz")
    monkeypatch.setattr(paths, "data_root", lambda: data)
    monkeypatch.chdir(tmp_path)
    doctor.require(["build"])  # the real host check; must pass on this machine

    code = cli.main(["build", "vexpress", "--buildroot-src", str(br_tree), "-j", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    out = tmp_path / "build" / "vexpress-4.0"
    assert "defconfig: all" in err and "lines survived olddefconfig" in err
    assert re.search(r"failed in package host-\S+ \S+, step: Downloading", err), err
    assert "a source download failed" in err
    assert f"full log: {out / 'fwgen' / 'build.log'}" in err
    # The kconfig stage waits for the toolchain Buildroot builds; it never got that far.
    assert not (out / "fwgen" / "linux.config").exists()
    assert (
        f"sha256  {actual}  linux-4.0.tar.xz"
        in (out / "fwgen" / "global-patch-dir" / "linux" / "linux.hash").read_text()
    )
    assert (out / "build" / "host-skeleton" / ".stamp_installed").exists()
    state = json.loads((out / "fwgen" / "state.json").read_text())
    assert state["complete"] is False
