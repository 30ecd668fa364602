"""A self-contained data root for Buildroot orchestration tests (test setup, not code under test).

It holds a board recipe `vexbr` shaped like board/vexpress, whose pins are the sha256 of two
small local tarballs placed in fwgen's (per-test) cache:
- buildroot-2025.02.16.tar.xz: the FAKE Buildroot of tests/fake_buildroot/ (not Buildroot);
- linux-4.0.tar.xz: a tiny tree with a Makefile, a Kconfig holding the symbols the recipe
  requires, and arch/arm/configs/vexpress_defconfig, so the real kconfig stage runs on it.
The external tree, post-image script and genimage configuration are copies of the real ones.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE_BUILDROOT = Path(__file__).resolve().parent / "fake_buildroot"
BOARD = "vexbr"

KCONFIG = """\
mainmenu "Fake Linux for fwgen tests"

config MODULES
\tbool "Enable loadable module support"
\toption modules

config MODULE_UNLOAD
\tbool "Module unloading"
\tdepends on MODULES

config PROC_FS
\tbool "/proc file system support"
\tdefault y

config SYSCTL
\tbool

config PROC_SYSCTL
\tbool "Sysctl support (/proc/sys)"
\tdepends on PROC_FS
\tselect SYSCTL
\tdefault y

config DEVTMPFS
\tbool "Maintain a devtmpfs filesystem"

config DEVTMPFS_MOUNT
\tbool "Automount devtmpfs at /dev"
\tdepends on DEVTMPFS
"""

MAKEFILE = "VERSION = 4\nPATCHLEVEL = 0\nSUBLEVEL = 0\nEXTRAVERSION =\nNAME = fake\n"
DEFCONFIG = "CONFIG_MODULES=y\nCONFIG_DEVTMPFS=y\n"

RECIPE = """\
description = "test board for fwgen's Buildroot orchestration (fake Buildroot)"
arch = "arm"
default_kernel = "4.0"
overlays = ["../../overlays/common"]
module_packages = ["usermodehelper-demo", "myevent-source"]

[buildroot]
version = "{br_version}"
file = "buildroot-2025.02.16.tar.xz"
sha256 = "{br_sha}"
urls = ["https://example.invalid/buildroot-2025.02.16.tar.xz"]
target = ["BR2_arm=y", "BR2_cortex_a9=y", "BR2_ARM_ENABLE_NEON=y", "BR2_ARM_ENABLE_VFP=y"]
gcc = "12"
kernel_image = "zImage"
rootfs_size = "64M"
getty_port = "ttyAMA0"
post_image_script = "post-image.sh"
genimage_config = "genimage.cfg"

[kernels."4.0"]
version = "4.0"
file = "linux-4.0.tar.xz"
sha256 = "{linux_sha}"
urls = ["https://example.invalid/linux-4.0.tar.xz"]
defconfig = "vexpress_defconfig"
device_tree = "vexpress-v2p-ca9"
patches = "../../br2-external/patches/linux/4.0"
fragment = "linux.fragment"
requirements = ["SYSCTL=y", "PROC_SYSCTL=y", "MODULES=y", "MODULE_UNLOAD=y"]

[kernels."4.0".license_files]
"./COPYING" = "af8067302947c01fd9eee72befa54c7e3ef8a48fecde7fd71277f2290b2bf0f7"

[qemu]
machine = "vexpress-a9"
memory = "256M"
args = ["-smp", "1", "-nographic"]
sd_append = "console=ttyAMA0,115200 root=/dev/mmcblk0 rootwait"
"""

PATCH = """\
--- a/Makefile
+++ b/Makefile
@@ -1,5 +1,5 @@
 VERSION = 4
 PATCHLEVEL = 0
 SUBLEVEL = 0
-EXTRAVERSION =
+EXTRAVERSION = -test
 NAME = fake
"""


def _tar_xz(source: Path, top: str, dest: Path) -> str:
    with tarfile.open(dest, "w:xz") as tar:
        tar.add(source, arcname=top)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def make_data_root(root: Path, cache: Path, *, br_version: str = "2025.02.16") -> Path:
    """Create the data root under `root` and the pinned tarballs in `cache`/dl; returns root."""
    staging = root / "staging"
    fake = staging / "buildroot"
    shutil.copytree(FAKE_BUILDROOT, fake)
    if br_version != "2025.02.16":
        makefile = fake / "Makefile"
        makefile.write_text(makefile.read_text().replace("2025.02.16", br_version))
    kernel = staging / "linux"
    (kernel / "arch" / "arm" / "configs").mkdir(parents=True)
    (kernel / "Makefile").write_text(MAKEFILE)
    (kernel / "Kconfig").write_text(KCONFIG)
    (kernel / "arch" / "arm" / "configs" / "vexpress_defconfig").write_text(DEFCONFIG)

    dl = cache / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    br_sha = _tar_xz(fake, "buildroot-2025.02.16", dl / "buildroot-2025.02.16.tar.xz")
    linux_sha = _tar_xz(kernel, "linux-4.0", dl / "linux-4.0.tar.xz")

    data = root / "data"
    board = data / "board" / BOARD
    board.mkdir(parents=True)
    (board / "board.toml").write_text(
        RECIPE.format(br_version=br_version, br_sha=br_sha, linux_sha=linux_sha)
    )
    for name in ("post-image.sh", "genimage.cfg"):
        shutil.copy2(REPO / "board" / "vexpress" / name, board / name)
    (board / "linux.fragment").write_text("CONFIG_DEVTMPFS_MOUNT=y\n")

    external = data / "br2-external"
    shutil.copytree(
        REPO / "br2-external",
        external,
        ignore=shutil.ignore_patterns("4.0", "6.1*", "*.rej", "*.orig"),
    )
    series = external / "patches" / "linux" / "4.0"
    series.mkdir(parents=True)
    (series / "0001-test.patch").write_text(PATCH)

    overlay = data / "overlays" / "common" / "usr" / "bin"
    overlay.mkdir(parents=True)
    (overlay / "hello").write_text("#!/bin/sh\necho hello\n")
    (overlay / "hello").chmod(0o755)
    (overlay / "bye").write_text("#!/bin/sh\necho bye\n")
    return data
