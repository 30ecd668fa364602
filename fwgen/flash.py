"""Write sdcard.img to an SD card (or a file), safely.

With the image's .bmap the copy is bmaptool's (only mapped blocks are written); without one,
a plain full copy. Either way the written bytes are then read back from the target and
compared (the mapped ranges against the bmap's sha256s, a full copy against the image's
sha256), unless --no-verify.

Before anything is written the image is checked against its directory's SHA256SUMS and
manifest.json (`Expected`), and the target is inspected and refused when writing to it is
not safe (fwgen.flash_target).
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pexpect
from tqdm import tqdm

from fwgen.errors import FwgenError
from fwgen.flash_target import (
    SystemView,
    Target,
    confirm,
    human,
    input_refusals,
    inspect,
    refusals,
)
from fwgen.log import progress_disabled

IMAGE = "sdcard.img"
BMAP = "sdcard.img.bmap"
BUFFER = 4 << 20


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
