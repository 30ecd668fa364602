"""Pack a root filesystem into a reproducible initramfs (newc cpio, gzip), without root.

Layers are merged in order, later ones winning, the way Buildroot copies rootfs overlays:
a base rootfs (a directory or a cpio / cpio.gz archive), then overlay directories, then single
files (a kernel module, ...). Every entry is owned by root, gets one fixed mtime
(SOURCE_DATE_EPOCH, else 0) and the archive lists entries in sorted order, so the same inputs
give the same bytes. A directory in a later layer that lands on a symlink to a directory in an
earlier one goes through the symlink (rsync --keep-dirlinks), so merged-/usr trees keep working.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from fwgen import fsutil
from fwgen.errors import FwgenError

NEWC_MAGIC = b"070701"
CRC_MAGIC = b"070702"
_TRAILER = "TRAILER!!!"

# The kernel runs /init from an initramfs, and devtmpfs is not mounted there automatically
# (CONFIG_DEVTMPFS_MOUNT only covers a mounted root), so a rootfs meant for a disk, like
# Buildroot's, needs this step before its own init. Buildroot's cpio rootfs adds the same.
INIT_SCRIPT = b"""#!/bin/sh
# Added by fwgen when packing the initramfs: mount devtmpfs, then run the rootfs's own init.
/bin/mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console
exec 1>/dev/console
exec 2>/dev/console
exec /sbin/init "$@"
"""


@dataclass
class _Entry:
    kind: int  # stat.S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO
    perm: int  # the low 12 mode bits
    data: bytes | Path = b""  # file content, or a host file read when writing; link target
    rdev: tuple[int, int] = (0, 0)


def pack(
    output: Path,
    layers: Sequence[Path],
    files: Mapping[str, Path] | None = None,
    *,
    add_init: bool = True,
    mtime: int | None = None,
) -> Path:
    """Write `output` (a .cpio.gz) from `layers` plus `files` ({target path: host file}).

    With `add_init`, a rootfs without /init gets the small script above (or a symlink to
    /sbin/init when it has no /bin/sh). /dev/console is always present.
    """
    tree = _Tree()
    for layer in layers:
        if layer.is_dir():
            tree.add_directory(layer)
        elif layer.is_file():
            tree.add_cpio(layer)
        else:
            raise FwgenError(f"rootfs layer {layer} does not exist", "give a directory or a cpio")
    for target, source in (files or {}).items():
        if not source.is_file():
            raise FwgenError(f"{source} (for {target} in the initramfs) is not a file")
        tree.add(target, _Entry(stat.S_IFREG, stat.S_IMODE(source.stat().st_mode), source))
    tree.ensure_dir("dev", 0o755)
    if "dev/console" not in tree.entries:
        tree.add("dev/console", _Entry(stat.S_IFCHR, 0o600, rdev=(5, 1)))
    if add_init and "init" not in tree.entries:
        if "bin/sh" in tree.entries:
            tree.add("init", _Entry(stat.S_IFREG, 0o755, INIT_SCRIPT))
        elif "sbin/init" in tree.entries:
            tree.add("init", _Entry(stat.S_IFLNK, 0o777, b"sbin/init"))
    if mtime is None:
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        fsutil.replacing(output, mode=0o644) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz,
    ):
        _write_newc(gz, tree, mtime)
    return output


def list_entries(archive: Path) -> dict[str, tuple[int, int, bytes]]:
    """{path: (mode, size, content or link target)} of a cpio(.gz): for tests and checks."""
    result = {}
    for name, mode, _rdev, data in _read_cpio(archive):
        result[name] = (mode, len(data), data)
    return result


class _Tree:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def add(self, path: str, entry: _Entry) -> None:
        parts = _normalise(_split(path))
        if not parts:
            return  # the root itself
        parent = self._resolve(parts[:-1])
        for i in range(1, len(parent) + 1):
            self.ensure_dir("/".join(parent[:i]), 0o755)
        key = "/".join([*parent, parts[-1]])
        old = self.entries.get(key)
        if old is not None and entry.kind == stat.S_IFDIR:
            if old.kind == stat.S_IFDIR:
                old.perm = entry.perm
                return
            if old.kind == stat.S_IFLNK and self._is_dir_link(key):
                return
        if old is not None and old.kind == stat.S_IFDIR and entry.kind != stat.S_IFDIR:
            prefix = key + "/"
            for name in [n for n in self.entries if n.startswith(prefix)]:
                del self.entries[name]
        self.entries[key] = entry

    def ensure_dir(self, path: str, perm: int) -> None:
        if path not in self.entries:
            self.entries[path] = _Entry(stat.S_IFDIR, perm)

    def _is_dir_link(self, key: str) -> bool:
        target = self._resolve(_split(key))
        entry = self.entries.get("/".join(target))
        return entry is not None and entry.kind == stat.S_IFDIR

    def _resolve(self, parts: list[str], depth: int = 0) -> list[str]:
        """`parts` with every symlink among them followed inside the tree."""
        if depth > 40:
            raise FwgenError(f"symlink loop in the rootfs at /{'/'.join(parts)}")
        done: list[str] = []
        for i, part in enumerate(parts):
            entry = self.entries.get("/".join([*done, part]))
            if entry is not None and entry.kind == stat.S_IFLNK:
                assert isinstance(entry.data, bytes)
                target = entry.data.decode("utf-8", "surrogateescape")
                base = [] if target.startswith("/") else done
                joined = _normalise([*base, *_split(target)])
                return self._resolve([*joined, *parts[i + 1 :]], depth + 1)
            done.append(part)
        return done

    def add_directory(self, top: Path) -> None:
        for rel, st in _walk(top):
            kind = stat.S_IFMT(st.st_mode)
            perm = stat.S_IMODE(st.st_mode)
            host = top / rel
            if kind == stat.S_IFDIR:
                self.add(rel, _Entry(kind, perm))
            elif kind == stat.S_IFREG:
                self.add(rel, _Entry(kind, perm, host))
            elif kind == stat.S_IFLNK:
                self.add(rel, _Entry(kind, 0o777, os.fsencode(os.readlink(host))))
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
                self.add(rel, _Entry(kind, perm, rdev=rdev))
            elif kind == stat.S_IFIFO:
                self.add(rel, _Entry(kind, perm))
            # sockets have no place in an archive

    def add_cpio(self, archive: Path) -> None:
        for name, mode, rdev, data in _read_cpio(archive):
            kind = stat.S_IFMT(mode)
            self.add(name, _Entry(kind, stat.S_IMODE(mode), data, rdev))


def _split(path: str) -> list[str]:
    return [p for p in PurePosixPath(path).parts if p not in ("/", ".")]


def _normalise(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in ("", "."):
            out.append(part)
    return out


def _walk(top: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under `top`, not following symlinks."""
    for rel, entry in fsutil.scan(top):
        yield rel, entry.stat(follow_symlinks=False)


def _write_newc(out: BinaryIO, tree: _Tree, mtime: int) -> None:
    # Sorting by path components puts every directory before what it holds.
    names = sorted(tree.entries, key=lambda n: n.split("/"))
    for ino, name in enumerate(names, start=1):
        entry = tree.entries[name]
        if isinstance(entry.data, Path):
            size = entry.data.stat().st_size
        else:
            size = len(entry.data) if entry.kind in (stat.S_IFREG, stat.S_IFLNK) else 0
        nlink = 2 if entry.kind == stat.S_IFDIR else 1
        _header(out, name, ino, entry.kind | entry.perm, nlink, mtime, size, entry.rdev)
        if isinstance(entry.data, Path):
            with entry.data.open("rb") as f:
                written = 0
                while chunk := f.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
            if written != size:
                raise FwgenError(f"{entry.data} changed size while being packed")
        elif size:
            out.write(entry.data)
        out.write(b"\0" * (-size % 4))
    _header(out, _TRAILER, 0, 0, 1, 0, 0, (0, 0))


def _header(
    out: BinaryIO,
    name: str,
    ino: int,
    mode: int,
    nlink: int,
    mtime: int,
    size: int,
    rdev: tuple[int, int],
) -> None:
    encoded = os.fsencode(name) + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(encoded), 0)
    head = NEWC_MAGIC + b"".join(b"%08X" % v for v in fields) + encoded
    out.write(head + b"\0" * (-len(head) % 4))


def _read_cpio(archive: Path) -> Iterator[tuple[str, int, tuple[int, int], bytes]]:
    raw = archive.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise FwgenError(f"{archive}: broken gzip data: {e}") from None
    stream = io.BytesIO(raw)
    hardlinks: dict[int, list[tuple[str, int, tuple[int, int]]]] = {}
    while True:
        head = stream.read(110)
        if len(head) < 110 or head[:6] not in (NEWC_MAGIC, CRC_MAGIC):
            raise FwgenError(
                f"{archive}: not a newc cpio archive (or truncated)",
                "make it in the root filesystem's folder with: find . | cpio -o -H newc > "
                "../rootfs.cpio",
            )
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        ino, mode, nlink, size, rmaj, rmin, namesize = (
            fields[0],
            fields[1],
            fields[4],
            fields[6],
            fields[9],
            fields[10],
            fields[11],
        )
        name = stream.read(namesize)[:-1].decode("utf-8", "surrogateescape")
        stream.read(-(110 + namesize) % 4)
        data = stream.read(size)
        stream.read(-size % 4)
        if name == _TRAILER:
            for group in hardlinks.values():  # hard links to an empty file
                for linked_name, linked_mode, linked_rdev in group:
                    yield linked_name, linked_mode, linked_rdev, b""
            return
        rdev = (rmaj, rmin)
        # newc stores a hard-linked file's data once, with the last of its names.
        if stat.S_ISREG(mode) and nlink > 1:
            group = hardlinks.setdefault(ino, [])
            group.append((name, mode, rdev))
            if size == 0:
                continue
            for linked_name, linked_mode, linked_rdev in group:
                yield linked_name, linked_mode, linked_rdev, data
            del hardlinks[ino]
            continue
        yield name, mode, rdev, data
