"""The target of `fwgen flash`, inspected before anything is written.

Through a `SystemView` (sysfs root and mounts file, both parameters so tests can fake them)
the target is refused when it is one of the flash's inputs (the image, its bmap, anything in
the images directory, through any link or bind mount), does not exist under /dev, is a
partition rather than a whole disk, is mounted or holds a mounted partition, holds the
running system, is not removable (unless forced) or is smaller than the image.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fwgen.errors import FwgenError

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
