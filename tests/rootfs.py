"""Test helper: a busybox root filesystem like Buildroot's, from Debian's busybox-static:armel.

/bin/busybox and a symlink per applet, busybox init with an rcS that mounts the virtual
filesystems and runs /etc/init.d/S??* (as Buildroot's skeleton does), a getty on ttyAMA0, root
without a password. `make_images` adds overlays/ and the out-of-tree kernel modules and packs
the initramfs with fwgen.initramfs, next to a kernel and device tree, as an images directory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import initramfs, modules
from fwgen.board import load_board
from tests import manifests
from tests.manifests import VEXPRESS_MODULE_PACKAGES

# Applets that Buildroot's busybox installs in /sbin (the rest go to /bin).
SBIN_APPLETS = {
    "init", "getty", "halt", "poweroff", "reboot", "insmod", "rmmod", "modprobe", "lsmod",
    "depmod", "modinfo", "syslogd", "klogd", "sysctl", "mdev", "ifconfig", "route",
    "switch_root", "sulogin", "swapon", "swapoff", "hwclock", "start-stop-daemon", "watchdog",
}  # fmt: skip

INITTAB = """\
# busybox init, as in Buildroot's skeleton
::sysinit:/etc/init.d/rcS
ttyAMA0::respawn:/sbin/getty -L ttyAMA0 0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
::shutdown:/bin/umount -a -r
"""

RCS = """\
#!/bin/sh
# Mount the virtual filesystems, then start every /etc/init.d/S??* script in order.
mount -t proc proc /proc
mount -o remount,rw /
mount -t sysfs sysfs /sys
grep -q " /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /var/log /var/run
hostname -F /etc/hostname
for script in /etc/init.d/S??*; do
    [ -x "$script" ] || continue
    "$script" start
done
"""

RCK = """\
#!/bin/sh
# Stop every /etc/init.d/S??* script, in reverse order.
for script in $(ls -r /etc/init.d/S??* 2>/dev/null); do
    [ -x "$script" ] || continue
    "$script" stop
done
"""

SYSLOG = """\
#!/bin/sh
# busybox syslogd and klogd, as Buildroot's S01syslogd/S02klogd start them.
case "$1" in
start) syslogd && klogd ;;
stop) killall klogd syslogd 2>/dev/null ;;
esac
"""

FILES = {
    "etc/inittab": INITTAB,
    "etc/hostname": "fwgen\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tfwgen\n",
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shadow": "root::19000:0:99999:7:::\n",
    "etc/shells": "/bin/sh\n",
    "etc/profile": 'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1="# "\n',
}
SCRIPTS = {"etc/init.d/rcS": RCS, "etc/init.d/rcK": RCK, "etc/init.d/S01syslogd": SYSLOG}
DIRS = ("dev", "proc", "sys", "tmp", "run", "root", "var/log", "usr/bin", "usr/sbin", "mnt")


def find_busybox() -> Path:
    """Debian's static armel busybox, found through dpkg; skip if it is not installed."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "busybox-static:armel"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("busybox-static:armel is not installed (scripts/test installs it)")
    for line in listing.splitlines():
        if line.endswith("/bin/busybox") and Path(line).is_file():
            return Path(line)
    pytest.skip("busybox-static:armel lists no bin/busybox")


def applets(busybox: Path) -> list[str]:
    """Applet names, read from the binary's sorted name table ("[", "[[", "acpid", ...).

    `busybox --list` would need an ARM CPU; the table is what that command prints from.
    """
    data = busybox.read_bytes()
    start = data.find(b"\0[\0[[\0")
    if start < 0:
        raise RuntimeError(f"{busybox}: no applet name table found")
    end = data.find(b"\0\0", start + 1)
    names = [n.decode() for n in data[start + 1 : end].split(b"\0")]
    if names != sorted(names) or not {"sh", "init", "getty", "login"} <= set(names):
        raise RuntimeError(f"{busybox}: the applet table does not look right: {names[:10]}")
    return names


def make_busybox_rootfs(dest: Path, busybox: Path | None = None) -> Path:
    busybox = busybox or find_busybox()
    dest.mkdir(parents=True, exist_ok=True)
    for name in DIRS:
        (dest / name).mkdir(parents=True, exist_ok=True)
    (dest / "bin").mkdir(exist_ok=True)
    (dest / "sbin").mkdir(exist_ok=True)
    shutil.copyfile(busybox, dest / "bin/busybox")
    (dest / "bin/busybox").chmod(0o755)
    for name in applets(busybox):
        if name == "busybox":
            continue
        link = dest / ("sbin" if name in SBIN_APPLETS else "bin") / name
        link.symlink_to("../bin/busybox" if name in SBIN_APPLETS else "busybox")
    (dest / "usr/bin/env").symlink_to("../../bin/busybox")
    for rel, text in FILES.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    (dest / "etc/shadow").chmod(0o600)
    for rel, text in SCRIPTS.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
        (dest / rel).chmod(0o755)
    (dest / "tmp").chmod(0o1777)
    return dest


def module_release(ko: Path) -> str:
    """The kernel release a module was built for, from its vermagic (no modinfo needed)."""
    match = re.search(rb"vermagic=([^\s\0]+)", ko.read_bytes())
    if not match:
        raise RuntimeError(f"{ko}: no vermagic")
    return match.group(1).decode()


def overlay_dirs() -> list[Path]:
    """The vexpress board's rootfs overlays, in the order the build applies them."""
    return load_board("vexpress").overlay_dirs()


def module_files() -> list[str]:
    """The out-of-tree modules' file names: usermodehelper_demo.ko, myevent_source.ko."""
    return [f"{name}.ko" for p in VEXPRESS_MODULE_PACKAGES for name in modules.module_names(p)]


def find_modules(directory: Path) -> list[Path]:
    """Those of the out-of-tree modules found under `directory`."""
    found = []
    for name in module_files():
        matches = sorted(directory.rglob(name))
        if matches:
            found.append(matches[0])
    return found


def find_kernel_files(directory: Path) -> dict[str, Path]:
    """zImage and vexpress-v2p-ca9.dtb under `directory`."""
    wanted = {"zImage": "zImage", "dtb": "vexpress-v2p-ca9.dtb"}
    found: dict[str, Path] = {}
    for key, name in wanted.items():
        direct = directory / name
        if direct.is_file():
            found[key] = direct
            continue
        matches = sorted(directory.rglob(name))
        if matches:
            found[key] = matches[0]
    return found


def make_images(
    dest: Path,
    kernel_dir: Path,
    rootfs: Path,
    *,
    overlays: list[Path] | None = None,
    variant: str | None = None,
    with_module: bool = True,
) -> Path:
    """An images directory: the kernel and dtb from `kernel_dir`, an initramfs of `rootfs`
    plus `overlays` (default: the project's) plus the out-of-tree modules found in
    `kernel_dir`, and a manifest."""
    files = find_kernel_files(kernel_dir)
    if "zImage" not in files or "dtb" not in files:
        raise RuntimeError(f"{kernel_dir} has no zImage or vexpress-v2p-ca9.dtb")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files["zImage"], dest / "zImage")
    shutil.copyfile(files["dtb"], dest / "vexpress-v2p-ca9.dtb")
    extra: dict[str, Path] = {}
    release = ""
    for ko in find_modules(kernel_dir) if with_module else []:
        release = module_release(ko)
        extra[f"lib/modules/{release}/extra/{ko.name}"] = ko
    layers = [rootfs, *(overlay_dirs() if overlays is None else overlays)]
    initramfs.pack(dest / "rootfs.cpio.gz", layers, extra)
    if variant or release:
        write_manifest(dest, release, variant)
    return dest


def write_manifest(dest: Path, release: str, variant: str | None = None) -> None:
    """A manifest.json whose kernel variant, version and release are these (the rest sample)."""
    if variant is None:
        variant = ".".join(release.split(".")[:2])
    version = release.split("-")[0].split("+")[0] if release else variant
    manifests.write(dest, {"kernel": {"variant": variant, "version": version, "release": release}})


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Buildroot-like busybox rootfs directory (session-wide; do not modify it)."""
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox-rootfs") / "rootfs")


def minimal_fdt() -> bytes:
    """A valid, nearly empty device tree blob (a root node with #address-cells and
    #size-cells): real QEMU accepts it, so a fake kernel can be started for real."""
    import struct

    strings = b"#address-cells\0#size-cells\0"

    def prop(name_offset: int, value: int) -> bytes:
        return struct.pack(">IIII", 3, 4, name_offset, value)

    body = struct.pack(">I", 1) + bytes(4) + prop(0, 1) + prop(15, 1) + struct.pack(">II", 2, 9)
    reserved = bytes(16)
    off_reserved = 40
    off_struct = off_reserved + len(reserved)
    off_strings = off_struct + len(body)
    total = off_strings + len(strings)
    header = struct.pack(
        ">10I",
        0xD00DFEED,
        total,
        off_struct,
        off_strings,
        off_reserved,
        17,
        16,
        0,
        len(strings),
        len(body),
    )
    return header + reserved + body + strings


def fake_kernel_images(dest: Path, *, root: str = "initramfs", manifest: dict | None = None):
    """FAKE images: files with the right magic numbers and nothing bootable in them.

    For tests of image checks, QEMU's command line and the fake console; `root` is
    "initramfs" (rootfs.cpio.gz), "sd" (sdcard.img, 5 MB ext2-looking) or "none".
    """
    import struct

    dest.mkdir(parents=True, exist_ok=True)
    zimage = bytearray(4096)
    zimage[0x24:0x28] = struct.pack("<I", 0x016F2818)
    (dest / "zImage").write_bytes(bytes(zimage))
    (dest / "vexpress-v2p-ca9.dtb").write_bytes(minimal_fdt())
    if root == "initramfs":
        tiny = dest.parent / f"{dest.name}-tiny-rootfs"
        (tiny / "etc").mkdir(parents=True, exist_ok=True)
        (tiny / "etc/hostname").write_text("fake\n")
        initramfs.pack(dest / "rootfs.cpio.gz", [tiny])
    elif root == "sd":
        image = bytearray(5_000_000)
        image[0x438:0x43A] = struct.pack("<H", 0xEF53)
        (dest / "sdcard.img").write_bytes(bytes(image))
    if manifest is not None:
        manifests.write(dest, manifest)
    return dest


def qemu_pids(fragment: str) -> list[int]:
    """PIDs of live qemu-system-* processes whose command line mentions `fragment`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or b"qemu-system" not in argv[0]:
            continue
        if any(fragment.encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids
