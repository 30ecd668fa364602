"""Boot an images directory in QEMU, with the machine the board recipe declares.

`find_images` checks what a build left (kernel, device tree, root filesystem, manifest) and
says clearly what is missing or wrong; `command_line` turns recipe + images into QEMU's
arguments; `prepared_root` makes the temporary SD-card copy QEMU may write to; `QemuProcess`
runs QEMU on a pseudo-terminal (its serial console) and makes sure it is gone afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import lzma
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pexpect

from fwgen import images as image_dirs
from fwgen.board import Board
from fwgen.console import LogFile
from fwgen.doctor import QEMU_PACKAGES
from fwgen.errors import FwgenError
from fwgen.manifest import Manifest

ZIMAGE_MAGIC = 0x016F2818  # little-endian word at offset 0x24 of an ARM zImage
FDT_MAGIC = 0xD00DFEED  # big-endian word at offset 0 of a device tree blob
EXT_MAGIC = 0xEF53  # little-endian at 0x438: an ext2/3/4 superblock

# What a root filesystem can be, in order of preference.
SD_IMAGES = ("sdcard.img", "rootfs.ext2")
INITRAMFS_IMAGES = ("rootfs.cpio.gz", "rootfs.cpio")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Images:
    """A checked images directory: what to boot and how."""

    directory: Path
    kernel: Path
    dtb: Path
    rootfs: Path
    root: str  # "sd" or "initramfs"
    variant: str
    manifest: Manifest | None = None  # None: a directory without manifest.json


def find_images(board: Board, directory: Path, variant: str | None = None) -> Images:
    """Check `directory` (a build's images/ or a release directory) and say what to boot;
    FwgenError naming what is missing or wrong."""
    build_hint = (
        f"build it first: fwgen build {board.argument} --kernel-only --rootfs DIR|CPIO, or pass "
        "--images DIR (a build's images/ or a release directory)"
    )
    if not directory.is_dir():
        raise FwgenError(f"no images directory at {directory}", build_hint)
    layout = image_dirs.read_layout(directory)
    manifest = layout.manifest

    def held(name: str) -> Path | None:
        image = layout.file(name)
        return image.path if image is not None and image.path.is_file() else None

    if manifest and manifest.board != board.name:
        raise FwgenError(
            f"{directory} holds images for board '{manifest.board}', not '{board.name}'",
            f"run: fwgen smoke {manifest.board} --images {directory}",
        )
    built = manifest.kernel.variant if manifest else None
    if variant and built and str(built) != variant:
        raise FwgenError(
            f"{directory} holds a kernel {built} build, but --kernel {variant} was asked for",
            f"drop --kernel, or point --images at a kernel {variant} build",
        )
    chosen = str(built or variant or board.default_kernel)
    kernel_variant = board.kernel(chosen)

    kernel_image = board.buildroot.kernel_image
    kernel = held(kernel_image)
    if kernel is None:
        raise FwgenError(f"no kernel in {directory}: {kernel_image} is missing", build_hint)
    if kernel_image == "zImage":
        check_zimage(kernel)

    dtb = (
        held(f"{kernel_variant.device_tree}.dtb") or directory / f"{kernel_variant.device_tree}.dtb"
    )
    if not dtb.is_file():
        others = sorted(p.name for p in directory.glob("*.dtb"))
        found = f" (found: {', '.join(others)})" if others else ""
        raise FwgenError(
            f"no device tree in {directory}: {dtb.name} is missing{found}",
            f"the kernel build must produce it ('make dtbs' with {kernel_variant.device_tree})",
        )
    if _word(dtb, 0, ">I") != FDT_MAGIC:
        raise FwgenError(f"{dtb} is not a device tree blob (no FDT magic)")

    for name in SD_IMAGES:
        if found := held(name):
            rootfs, root = found, "sd"
            break
    else:
        for name in INITRAMFS_IMAGES:
            if found := held(name):
                rootfs, root = found, "initramfs"
                break
        else:
            wanted = ", ".join(SD_IMAGES + INITRAMFS_IMAGES)
            raise FwgenError(f"no root filesystem in {directory} (looked for {wanted})", build_hint)
    _check_rootfs(rootfs, root)
    return Images(directory, kernel, dtb, rootfs, root, chosen, manifest)


def check_zimage(path: Path) -> None:
    """Refuse anything that is not a 32-bit ARM zImage, naming what it looks like instead."""
    if _word(path, 0x24, "<I") == ZIMAGE_MAGIC:
        return
    head = path.read_bytes()[:0x240]
    if head[:4] == b"\x7fELF":
        what = "an ELF file (vmlinux?), not the compressed zImage"
    elif head[0x38:0x3C] == b"ARM\x64":
        what = "an arm64 Image (wrong architecture)"
    elif head[0x202:0x206] == b"HdrS":
        what = "an x86 bzImage (wrong architecture)"
    else:
        what = "not an ARM zImage (no magic 0x016f2818 at offset 0x24; wrong architecture?)"
    raise FwgenError(
        f"{path} is {what}",
        "build the kernel for ARM (fwgen build BOARD --kernel-only --rootfs DIR|CPIO, or "
        "make ARCH=arm CROSS_COMPILE=arm-linux-gnueabi- zImage)",
    )


def _word(path: Path, offset: int, fmt: str) -> int | None:
    with path.open("rb") as f:
        f.seek(offset)
        raw = f.read(struct.calcsize(fmt))
    return struct.unpack(fmt, raw)[0] if len(raw) == struct.calcsize(fmt) else None


def _open(path: Path) -> IO[bytes]:
    """A file's content; an .xz (a release's compressed image) decompressed on the fly."""
    return lzma.open(path, "rb") if path.name.endswith(".xz") else path.open("rb")


def _check_rootfs(path: Path, root: str) -> None:
    try:
        with _open(path) as f:
            head = f.read(0x440)
    except (lzma.LZMAError, EOFError) as e:
        raise FwgenError(f"{path} is not a valid xz file ({e})") from None
    if root == "sd":
        is_ext = len(head) >= 0x43A and struct.unpack("<H", head[0x438:0x43A])[0] == EXT_MAGIC
        has_mbr = len(head) >= 512 and head[510:512] == b"\x55\xaa"
        if not (is_ext or has_mbr):
            raise FwgenError(f"{path} is neither an ext2/3/4 filesystem nor a partitioned image")
    elif not (head[:2] == b"\x1f\x8b" or head[:6] in (b"070701", b"070702")):
        raise FwgenError(f"{path} is neither a gzip-compressed nor a plain newc cpio archive")


def qemu_binary(board: Board, env: dict[str, str] | None = None) -> str:
    """The full path of the recipe's QEMU, or FwgenError with the line that installs it."""
    name = board.qemu.binary
    path = shutil.which(name, path=(env or os.environ).get("PATH", os.defpath))
    if path is None:
        package = QEMU_PACKAGES.get(name, name)
        raise FwgenError(f"{name} is not installed (not on PATH)", f"apt-get install {package}")
    return path


def command_line(board: Board, images: Images, sd_copy: Path | None, *, smoke: bool) -> list[str]:
    """QEMU's argv. `sd_copy` is the padded copy of an SD image (see `prepared_root`)."""
    q = board.qemu
    argv = [q.binary, "-M", q.machine, "-m", q.memory, *q.args]
    if not {"-nographic", "-serial"} & set(q.args):
        argv += ["-display", "none", "-serial", "mon:stdio"]
    argv += ["-kernel", str(images.kernel), "-dtb", str(images.dtb)]
    if images.root == "sd":
        if sd_copy is None:
            raise ValueError("an SD-card root needs the padded copy from prepared_root()")
        # QEMU option values escape a comma by doubling it.
        drive = str(sd_copy).replace(",", ",,")
        argv += ["-drive", f"file={drive},if=sd,format=raw"]
        append = q.sd_append
    else:
        argv += ["-initrd", str(images.rootfs)]
        append = q.initramfs_append
    if append:
        argv += ["-append", append]
    if smoke:
        # A guest reboot (panic=N, a reboot command) ends the run instead of booting again.
        argv.append("-no-reboot")
    return argv


def padded_copy(source: Path, directory: Path) -> Path:
    """A copy of `source` in `directory` (decompressed, for a release's .xz), grown
    (sparsely) to a power-of-two size.

    QEMU's SD card model refuses other sizes; the artifact itself is never touched.
    """
    target = directory / source.name.removesuffix(".xz")
    if source.name.endswith(".xz"):
        with _open(source) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        shutil.copyfile(source, target)
    size = target.stat().st_size
    padded = 1 << (size - 1).bit_length() if size else 1 << 20
    if padded != size:
        os.truncate(target, padded)
    return target


@contextlib.contextmanager
def prepared_root(images: Images) -> Iterator[Path | None]:
    """The SD copy to boot (removed afterwards), or None for an initramfs."""
    if images.root != "sd":
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="fwgen-sd-") as tmp:
        yield padded_copy(images.rootfs, Path(tmp))


class QemuProcess:
    """QEMU on a pseudo-terminal, driven through pexpect; stopped for sure on leaving.

    QEMU's stderr goes to its own file, so its complaints are not mixed with the guest's
    console. It runs in a session of its own: Ctrl-C in fwgen's terminal reaches fwgen only,
    and fwgen kills QEMU's whole process group on the way out (any exit: return, exception,
    KeyboardInterrupt, SIGTERM turned into SystemExit by `terminate_on_sigterm`). Were fwgen
    killed outright, closing the pty hangs QEMU up and it exits.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        console_log: LogFile,
        stderr_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.console_log = console_log
        self.stderr_path = stderr_path
        self.env = env
        self.child: pexpect.spawn | None = None
        self.exit_status: int | None = None

    def __enter__(self) -> pexpect.spawn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> pexpect.spawn:
        env = qemu_env(self.env)
        executable = shutil.which(self.argv[0], path=env.get("PATH", os.defpath))
        if executable is None:
            package = QEMU_PACKAGES.get(self.argv[0], self.argv[0])
            raise FwgenError(
                f"{self.argv[0]} is not installed (not on PATH)", f"apt-get install {package}"
            )
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        stderr_path = os.fsencode(self.stderr_path)

        libc = ctypes.CDLL(None, use_errno=True)

        def child_setup() -> None:  # in the child, before exec
            fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
            os.close(fd)
            # QEMU must not outlive fwgen, even a SIGKILLed one: the kernel kills it when
            # fwgen dies, and a hang-up of its terminal ends it even if fwgen was started
            # with SIGHUP ignored (nohup).
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)

        self.child = pexpect.spawn(
            executable,
            self.argv[1:],
            env=env,
            echo=False,
            encoding="utf-8",
            codec_errors="replace",
            timeout=None,
            preexec_fn=child_setup,
        )
        self.child.logfile_read = self.console_log
        return self.child

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def stderr_text(self, limit: int = 4000) -> str:
        """What QEMU said on stderr, without its host-side noise (see `host_noise`); the
        file keeps every line."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if not host_noise(line)]
        return "\n".join(kept)[-limit:].strip()

    def wait(self) -> int | None:
        """QEMU's exit status once it has exited by itself (after EOF on the console)."""
        if self.child is None:
            return None
        with contextlib.suppress(pexpect.ExceptionPexpect):
            self.child.wait()
        self.exit_status = self.child.exitstatus
        if self.exit_status is None and self.child.signalstatus is not None:
            self.exit_status = 128 + self.child.signalstatus
        return self.exit_status

    def stop(self) -> None:
        """Kill QEMU's process group if anything is left, and reap it. Idempotent."""
        child = self.child
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            child.close(force=True)
        if self.exit_status is None:
            self.exit_status = child.exitstatus
        self.child = None


# What QEMU prints about the host rather than the guest: audio backends it probes (ALSA,
# PulseAudio, JACK, SDL, OSS), audio modules it cannot load, and deprecation notes about them.
_HOST_NOISE = re.compile(
    r"^(ALSA lib |alsa: |audio: |pulseaudio: |pa: |jack: |sdl: |oss: |"
    r"qemu(-system-\w+)?: module audio-|.*audiodev)",
)


def host_noise(line: str) -> bool:
    """True for a QEMU stderr line about the host's audio, not about the guest."""
    return bool(_HOST_NOISE.match(line.strip()))


def qemu_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for QEMU: no host audio (the board's sound chip needs none; without
    this QEMU 7 complains about ALSA on stderr), unless the caller says otherwise."""
    result = dict(os.environ if env is None else env)
    result.setdefault("QEMU_AUDIO_DRV", "none")
    return result


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) meanwhile, so cleanup code runs (main thread only)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interactive(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run QEMU attached to this terminal and return its exit status."""
    # The terminal's Ctrl-C belongs to QEMU (with -nographic it goes to the guest); fwgen
    # only waits, like system(3) does.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(argv, env=qemu_env(env)).returncode
    finally:
        signal.signal(signal.SIGINT, previous)
