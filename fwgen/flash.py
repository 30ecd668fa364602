"""Write sdcard.img to an SD card (or a file), safely.

With the image's .bmap the copy is bmaptool's (only mapped blocks are written); without one,
a plain full copy. Either way the written bytes are then read back from the target and
compared (the mapped ranges against the bmap's sha256s, a full copy against the image's
sha256), unless --no-verify.

Before anything is written the image is checked against its directory's SHA256SUMS and
manifest.json (`Expected`), and the target is inspected through a `SystemView` (sysfs root and
mounts file, both parameters so tests can fake them) and refused when it is one of the
flash's inputs (the image, its bmap, anything in the images directory, through any link or
bind mount), does not exist under /dev, is a partition rather than a whole disk, is mounted
or holds a mounted partition, holds the running system, is not removable (unless forced) or
is smaller than the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import shutil
import stat
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pexpect
from tqdm import tqdm

from fwgen.errors import FwgenError
from fwgen.log import progress_disabled

IMAGE = "sdcard.img"
BMAP = "sdcard.img.bmap"
BUFFER = 4 << 20
SECTOR = 512


@dataclass(frozen=True)
class SystemView:
    """Where the block-device facts come from; tests point these at fakes."""

    sysfs: Path = Path("/sys")
    mounts: Path = Path("/proc/self/mounts")
    dev: Path = Path("/dev")

    def is_block(self, path: Path) -> bool:
        return stat.S_ISBLK(path.stat().st_mode)

    def block_dir(self, path: Path) -> Path | None:
        """The sysfs directory of block device `path` (by name, else by major:minor)."""
        by_name = self.sysfs / "class" / "block" / path.name
        if by_name.is_dir():
            return by_name
        try:
            rdev = path.stat().st_rdev
        except OSError:
            return None
        by_number = self.sysfs / "dev" / "block" / f"{os.major(rdev)}:{os.minor(rdev)}"
        return by_number if by_number.is_dir() else None


@dataclass
class Target:
    given: Path
    path: Path  # symlinks resolved (/dev/disk/by-id/... -> /dev/sdX)
    block: bool
    size: int | None = None  # bytes; None for a file that does not exist yet
    model: str = ""
    removable: bool | None = None
    partitions: list[str] = field(default_factory=list)
    parent_disk: str | None = None  # set when the device is a partition: its whole disk
    created: bool = False  # a regular file fwgen creates (removed again on failure)

    def describe(self) -> str:
        shown = str(self.path) if self.given == self.path else f"{self.given} -> {self.path}"
        if not self.block:
            state = "new file" if self.size is None else f"file, {human(self.size)}"
            return f"{shown} ({state})"
        parts = ", ".join(self.partitions) or "none"
        removable = {True: "removable", False: "NOT removable", None: "removable: unknown"}
        return (
            f"{shown}: {self.model or 'unknown model'}, {human(self.size or 0)}, "
            f"{removable[self.removable]}, partitions: {parts}"
        )


@dataclass(frozen=True)
class Expected:
    """What the image's content must be before anything is written: its sha256, its size,
    and what that was checked against (said in the final line)."""

    sha256: str
    size: int
    against: str


@dataclass
class FlashResult:
    target: Target
    written: int
    seconds: float
    verified: bool
    method: str  # "bmaptool" or "full copy"
    how: str = ""  # what was read back and compared with what
    checked_before: str = ""  # what the image matched before writing

    def summary(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        if self.verified:
            check = f"verified: {self.how}"
        else:
            check = "NOT verified (--no-verify): nothing was read back"
        if self.checked_before:
            check += f" ({self.checked_before})"
        return (
            f"wrote {human(self.written)} ({self.written} bytes) to {self.target.path} "
            f"in {self.seconds:.1f} s ({human(int(rate))}/s) with {self.method}; {check}"
        )


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# --- inspecting the target --------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _mount_sources(view: SystemView) -> list[tuple[str, str]]:
    """(source, mountpoint) for every mount, octal escapes undone."""
    try:
        text = view.mounts.read_text()
    except OSError as e:
        raise FwgenError(f"cannot read {view.mounts} to see what is mounted ({e})") from None
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            rows.append((_unescape(fields[0]), _unescape(fields[1])))
    return rows


def _unescape(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _partitions(block_dir: Path) -> list[str]:
    return sorted(p.name for p in block_dir.iterdir() if (p / "partition").is_file() and p.is_dir())


def _disk_of(block_dir: Path) -> Path:
    """A partition's whole disk (its parent directory in sysfs), else the device itself."""
    if (block_dir / "partition").is_file():
        return block_dir.resolve().parent
    return block_dir


def _names_in_use_by(view: SystemView, name: str, seen: set[str] | None = None) -> set[str]:
    """`name` and every block device below it (device-mapper slaves), recursively."""
    seen = seen if seen is not None else set()
    if name in seen:
        return seen
    seen.add(name)
    slaves = view.sysfs / "class" / "block" / name / "slaves"
    if slaves.is_dir():
        for slave in slaves.iterdir():
            _names_in_use_by(view, slave.name, seen)
    return seen


def _source_name(view: SystemView, source: str) -> str | None:
    """The block device name behind a mount source such as /dev/sda1 or /dev/mapper/x."""
    if not source.startswith("/"):
        return None
    name = Path(os.path.realpath(source)).name
    return name if (view.sysfs / "class" / "block" / name).exists() else None


def system_disks(view: SystemView) -> set[str]:
    """Whole disks holding the root filesystem (through partitions and dm slaves)."""
    names: set[str] = set()
    for source, mountpoint in _mount_sources(view):
        if mountpoint != "/":
            continue
        name = _source_name(view, source)
        if name is None and view == SystemView():
            try:
                dev = os.stat("/").st_dev
                node = view.sysfs / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
                name = node.resolve().name if node.exists() else None
            except OSError:
                name = None
        if name:
            names |= _names_in_use_by(view, name)
    disks = set()
    for name in names:
        block_dir = view.sysfs / "class" / "block" / name
        if block_dir.exists():
            disks.add(_disk_of(block_dir).name)
    return disks


def inspect(device: Path, view: SystemView) -> Target:
    """What `device` is; FwgenError when it must not be written at all."""
    given = Path(os.path.abspath(device))
    path = Path(os.path.realpath(given))
    under_dev = path.is_relative_to(view.dev) or given.is_relative_to(view.dev)
    if not path.exists():
        if under_dev:
            raise FwgenError(
                f"{given} does not exist; fwgen never creates files under {view.dev}",
                "plug the card in and check the name with lsblk or ls -l /dev/disk/by-id/",
            )
        if not path.parent.is_dir():
            raise FwgenError(
                f"{given}: the directory {path.parent} does not exist",
                "give an existing block device, or a file path in an existing directory",
            )
        return Target(given, path, block=False, created=True)
    if path.is_dir():
        raise FwgenError(f"{given} is a directory", "give a block device or a file path")
    if not view.is_block(path):
        if under_dev:
            raise FwgenError(
                f"{given} is not a block device",
                "give the card's whole-disk device, e.g. /dev/sdX or /dev/mmcblkN",
            )
        return Target(given, path, block=False, size=path.stat().st_size)
    block_dir = view.block_dir(path)
    if block_dir is None:
        raise FwgenError(
            f"{given} is a block device that {view.sysfs} knows nothing about",
            "is sysfs mounted? give the device node as lsblk lists it",
        )
    disk = _disk_of(block_dir)
    size_text = _read(block_dir / "size")
    return Target(
        given,
        path,
        block=True,
        size=int(size_text) * SECTOR if size_text.isdigit() else None,
        model=" ".join(_read(disk / "device" / "model").split()),
        removable={"1": True, "0": False}.get(_read(disk / "removable")),
        partitions=_partitions(block_dir),
        parent_disk=disk.name if disk != block_dir else None,
    )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _loop_backing_file(target: Target, view: SystemView) -> Path | None:
    """The file behind a loop device (writing the device writes that file)."""
    block_dir = view.block_dir(target.path) if target.block else None
    if block_dir is None:
        return None
    text = _read(_disk_of(block_dir) / "loop" / "backing_file")
    return Path(text.removesuffix(" (deleted)")) if text else None


def input_refusals(target: Target, inputs: list[Path], view: SystemView | None = None) -> list[str]:
    """Why `target` is one of the flash's inputs: the image, its bmap, or anything inside the
    images directory, reached by name, symlink, hard link (same inode), bind mount, or as
    the file behind a loop device."""
    view = view or SystemView()
    directories = [p for p in inputs if p.is_dir()]
    files = [p for p in inputs if p.is_file()]
    for folder in directories:
        files += [p for p in folder.iterdir() if p.is_file()]
    wanted = {_identity(folder): folder for folder in directories}
    wanted.pop(None, None)
    written = [(target.path, str(target.given))]
    backing = _loop_backing_file(target, view)
    if backing is not None:
        written.append((backing, f"{target.given} (a loop device on {backing})"))
    for path, shown in written:
        mine = _identity(path)
        for file in files:
            if mine is not None and mine == _identity(file):
                return [
                    f"{shown} is {file} (the same file, by name, link or bind mount): writing "
                    "it would destroy the flash's own input"
                ]
        # Inside an images directory: by path, or through a folder that is that directory
        # under another name (a symlinked or bind-mounted view of it).
        for ancestor in [path.parent, *path.parent.parents]:
            folder = wanted.get(_identity(ancestor))
            if folder is not None:
                return [
                    f"{shown} is inside the images directory {folder}: fwgen never writes "
                    "there (it would change or destroy the flash's inputs)"
                ]
    return []


def refusals(target: Target, image_size: int, view: SystemView, *, force: bool) -> list[str]:
    """Why `target` must not receive an image of `image_size` bytes (empty: go ahead)."""
    problems: list[str] = []
    if target.block and target.parent_disk:
        problems.append(
            f"{target.path} is a partition of {view.dev / target.parent_disk}: fwgen writes "
            f"whole disks only (the image holds its own partition table); use --device "
            f"{view.dev / target.parent_disk}"
        )
    if target.block:
        names = {target.path.name, *target.partitions}
        for source, mountpoint in _mount_sources(view):
            name = _source_name(view, source)
            under = _names_in_use_by(view, name) if name else set()
            if names & under:
                problems.append(
                    f"{source} is mounted on {mountpoint}: unmount it first (umount {source})"
                )
        for part in sorted(names):
            holders = view.sysfs / "class" / "block" / part / "holders"
            if holders.is_dir() and any(holders.iterdir()):
                users = ", ".join(sorted(h.name for h in holders.iterdir()))
                problems.append(f"{part} is in use by {users} (device-mapper, RAID or LVM)")
        block_dir = view.block_dir(target.path)
        disk = _disk_of(block_dir).name if block_dir else target.path.name
        if disk in system_disks(view):
            problems.append(f"{target.path} holds the running system's root filesystem (/)")
        if target.removable is False and not force:
            problems.append(
                f"{target.path} is not a removable disk; if it really is the card "
                "(some USB readers and internal slots say so), pass --force"
            )
    if target.size is not None and target.size < image_size and target.block:
        problems.append(
            f"{target.path} holds {human(target.size)} but the image is {human(image_size)}: "
            "use a larger card"
        )
    return problems


def confirm(
    target: Target, *, yes: bool, ask: Callable[[str], str] | None = None, interactive: bool
) -> None:
    """Ask "yes" before overwriting; --yes skips it; no terminal and no --yes refuses."""
    if yes:
        return
    if not interactive:
        raise FwgenError(
            f"not overwriting {target.path} without confirmation, and there is no terminal "
            "to ask on",
            "pass --yes to confirm non-interactively",
        )
    prompt = f"Everything on {target.path} will be overwritten. Type 'yes' to continue: "
    answer = (ask or input)(prompt)
    if answer.strip() != "yes":
        raise FwgenError(f"not confirmed: {target.path} was left alone")


# --- writing ----------------------------------------------------------------------------------


def mapped_bytes(bmap: Path, image_size: int | None = None) -> int:
    """Bytes the bmap marks as mapped (the last range clipped to the image size)."""
    try:
        root = ET.parse(bmap).getroot()
        block = int((root.findtext("BlockSize") or "").strip())
        size = image_size or int((root.findtext("ImageSize") or "").strip())
        total = 0
        for item in root.iter("Range"):
            first, _, last = (item.text or "").strip().partition("-")
            start, end = int(first), int(last or first)
            total += min((end + 1) * block, size) - start * block
    except (ET.ParseError, ValueError) as e:
        raise FwgenError(f"{bmap} is not a valid block map ({e})") from None
    return total


def bmap_ranges(bmap: Path) -> tuple[int, int, list[tuple[int, int, str | None]]]:
    """(image size, block size, [(first block, last block, sha256 or None)])."""
    try:
        root = ET.parse(bmap).getroot()
        size = int((root.findtext("ImageSize") or "").strip())
        block = int((root.findtext("BlockSize") or "").strip())
        ranges = []
        for item in root.iter("Range"):
            first, _, last = (item.text or "").strip().partition("-")
            ranges.append((int(first), int(last or first), item.get("chksum")))
    except (ET.ParseError, ValueError) as e:
        raise FwgenError(f"{bmap} is not a valid block map ({e})") from None
    return size, block, ranges


_PERCENT = re.compile(rb"(\d+)% copied")
_ERROR = re.compile(rb"ERROR\S*: (.+)")


def copy_with_bmap(image: Path, bmap: Path, target: Target, *, verify: bool) -> int:
    """`bmaptool copy` under a pty (so it reports progress); returns the bytes written."""
    tool = shutil.which("bmaptool")
    if tool is None:
        raise FwgenError(
            "bmaptool is not installed (needed to write with a .bmap)",
            "install it: apt-get install bmap-tools (as root; check with: fwgen doctor "
            "--stage flash)",
        )
    total = mapped_bytes(bmap)
    argv = ["copy", "--bmap", str(bmap), *([] if verify else ["--no-verify"])]
    argv += [str(image), str(target.path)]
    child = pexpect.spawn(tool, argv, timeout=None, env={**os.environ, "LC_ALL": "C"})
    output = b""
    try:
        with tqdm(total=total, unit="B", unit_scale=True, disable=progress_disabled()) as bar:
            while True:
                try:
                    chunk = child.read_nonblocking(4096, timeout=None)
                except pexpect.EOF:
                    break
                output += chunk
                percents = _PERCENT.findall(output[-4096:])
                if percents:
                    bar.update(total * int(percents[-1]) // 100 - bar.n)
            child.close()
            if child.exitstatus == 0:
                bar.update(total - bar.n)
    finally:
        if child.isalive():  # interrupted: bmaptool runs in its own session, stop it too
            child.terminate(force=True)
    if child.exitstatus != 0:
        errors = [m.decode(errors="replace").strip() for m in _ERROR.findall(output)]
        detail = errors[-1] if errors else output.decode(errors="replace").strip()[-500:]
        hint = None
        if "checksum mismatch" in detail:
            hint = f"{image} does not match {bmap}: rebuild, or re-download the release"
        raise FwgenError(f"bmaptool could not write {target.path}: {detail}", hint)
    return total


def _open_target(target: Target, size: int) -> int:
    if target.block:
        try:
            return os.open(target.path, os.O_RDWR | os.O_EXCL)
        except OSError as e:
            raise FwgenError(
                f"cannot open {target.path} exclusively ({e.strerror})",
                "something is using the device (mounted? another tool?); unmount and retry",
            ) from None
    fd = os.open(target.path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, size)
    return fd


def open_image(image: Path) -> IO[bytes]:
    """The image's content: an .xz (as a release holds it) is decompressed on the fly."""
    return lzma.open(image, "rb") if image.name.endswith(".xz") else image.open("rb")


def image_size(image: Path) -> int:
    if not image.name.endswith(".xz"):
        return image.stat().st_size
    size = 0
    with open_image(image) as f:
        while chunk := f.read(BUFFER):
            size += len(chunk)
    return size


def copy_full(image: Path, target: Target, size: int) -> tuple[int, str]:
    """Copy every byte of `image` to the target and fsync; (bytes, sha256 of what was sent)."""
    digest = hashlib.sha256()
    fd = _open_target(target, size)
    written = 0
    try:
        with (
            open_image(image) as src,
            tqdm(total=size, unit="B", unit_scale=True, disable=progress_disabled()) as bar,
        ):
            while chunk := src.read(BUFFER):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                written += len(chunk)
                bar.update(len(chunk))
        os.fsync(fd)
    finally:
        os.close(fd)
    return written, digest.hexdigest()


@contextlib.contextmanager
def _reading(target: Target) -> Iterator[int]:
    """The target opened for reading what is really on it (not the page cache)."""
    fd = os.open(target.path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        yield fd
    finally:
        os.close(fd)


def _read_range(fd: int, start: int, length: int, bar: tqdm) -> tuple[str, int]:
    digest = hashlib.sha256()
    got = 0
    while got < length:
        chunk = os.pread(fd, min(BUFFER, length - got), start + got)
        if not chunk:
            break
        digest.update(chunk)
        got += len(chunk)
        bar.update(len(chunk))
    return digest.hexdigest(), got


def read_back_full(target: Target, size: int, want: str, against: str) -> str:
    """Read the first `size` bytes back from the target; FwgenError unless their sha256 is
    `want`. Returns what was compared, for the final line."""
    with (
        _reading(target) as fd,
        tqdm(
            total=size, unit="B", unit_scale=True, disable=progress_disabled(), desc="verify"
        ) as bar,
    ):
        got, length = _read_range(fd, 0, size, bar)
    if length != size or got != want:
        raise FwgenError(
            f"read-back of {target.path} differs from the image ({against}): the bytes on "
            "the target are not the ones written",
            "the card may be faulty or counterfeit; try another card",
        )
    return f"read back all {size} bytes, sha256 equal to the image's ({against})"


def read_back_mapped(target: Target, image: Path, bmap: Path) -> str:
    """Read every range the bmap maps back from the target and compare it with the bmap's
    sha256 (with the image's own bytes where the bmap has no checksum)."""
    size, block, ranges = bmap_ranges(bmap)
    total = mapped_bytes(bmap, size)
    bad: list[str] = []
    with (
        _reading(target) as fd,
        open_image(image) as src,
        tqdm(
            total=total, unit="B", unit_scale=True, disable=progress_disabled(), desc="verify"
        ) as bar,
    ):
        for first, last, checksum in sorted(ranges):
            start, end = first * block, min((last + 1) * block, size)
            got, length = _read_range(fd, start, end - start, bar)
            if not (checksum and len(checksum) == 64):  # no sha256 in the bmap: the image's
                src.seek(start)
                checksum = hashlib.sha256(src.read(end - start)).hexdigest()
            if length != end - start or got != checksum:
                bad.append(f"blocks {first}-{last}")
    if bad:
        raise FwgenError(
            f"read-back of {target.path} differs from {bmap.name} in {', '.join(bad[:5])}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
            "the card may be faulty or counterfeit; try another card",
        )
    return f"read back the {total} mapped bytes, each range equal to {bmap.name}'s sha256"


def flash(
    image: Path,
    device: Path,
    *,
    bmap: Path | None = None,
    verify: bool = True,
    yes: bool = False,
    force: bool = False,
    expected: Expected | None = None,
    inputs: list[Path] | None = None,
    view: SystemView | None = None,
    ask: Callable[[str], str] | None = None,
    interactive: bool | None = None,
    say: Callable[[str], None] = print,
) -> FlashResult:
    """Check `device`, confirm, write `image` (with `bmap` when given), read it back.

    `inputs` are what the flash must never overwrite (default: the image, the bmap and the
    image's directory). `expected` is the image's checked content; without it the image is
    hashed here (and only compared with itself on read-back). FwgenError on any refusal.
    """
    view = view or SystemView()
    if not image.is_file():
        raise FwgenError(f"no {image.name} at {image}", "build with an SD card image first")
    target = inspect(device, view)
    say(f"target: {target.describe()}")
    protected = inputs if inputs is not None else [image, image.parent, *([bmap] if bmap else [])]
    problems = input_refusals(target, protected, view)
    size = expected.size if expected else image_size(image)
    problems += refusals(target, size, view, force=force)
    if problems:
        raise FwgenError(
            f"refusing to write {target.path}:\n  " + "\n  ".join(problems),
            "check the device with lsblk; nothing was written",
        )
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if target.block or not target.created:
        confirm(target, yes=yes, ask=ask, interactive=interactive)
    started = time.monotonic()
    how = ""
    try:
        if bmap is not None:
            written = copy_with_bmap(image, bmap, target, verify=verify)
            method = "bmaptool"
            if verify:
                how = read_back_mapped(target, image, bmap)
        else:
            written, sent = copy_full(image, target, size)
            method = "full copy"
            if expected is not None and sent != expected.sha256:
                raise FwgenError(
                    f"{image} changed while it was written (sha256 {sent}, checked "
                    f"{expected.sha256} before)",
                    "nothing else may write the images while fwgen flashes them; run again",
                )
            if verify:
                against = expected.against if expected else f"as read from {image.name}"
                how = read_back_full(target, written, sent, against)
    except BaseException:
        if target.created:
            target.path.unlink(missing_ok=True)
        raise
    before = f"{image.name} matched {expected.against} before writing" if expected else ""
    return FlashResult(
        target, written, time.monotonic() - started, verify, method, how, checked_before=before
    )
