"""Small file helpers shared by the modules: atomic replacement of a file, file hashes, and a
walk of a tree.

An atomic write goes to a new temporary file in the target's directory (so the rename stays on
one file system), which then replaces the target with os.replace: readers see the old file or
the new one, never a part, and the target gets a new inode (a hard link to the old content,
e.g. in a tree sharing inodes with a pristine cache, is left alone). The temporary file is
removed when anything fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK_SIZE = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in large blocks."""
    return sha256_digest(path).hexdigest()


def sha256_digest(path: Path) -> Any:
    """A sha256 object fed with the content of `path`, to be fed more (a resumed download)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with Path(path).open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace `path` with `data` (a str is written as UTF-8) in one step; see `replacing`."""
    with replacing(path, mode=mode) as tmp:
        tmp.write_bytes(_encode(data))


@contextlib.contextmanager
def replacing(path: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a new, empty temporary file next to `path` to write; when the block ends without
    an exception, it replaces `path`, otherwise it is removed.

    `mode` sets the new file's permission bits; None keeps what a new file gets (0o666 minus
    the umask) or whatever the block left (a hard link made in its place keeps its own).
    """
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_temp(path: Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write `data` into a new temporary file next to `path` and return it, for callers that
    replace several files together; nothing is left behind if writing fails."""
    tmp = _new_temp(Path(path))
    try:
        tmp.write_bytes(_encode(data))
        if mode is not None:
            os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _encode(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def _new_temp(path: Path) -> Path:
    """Create `.<name>.<random>.tmp` next to `path`, empty, mode 0o666 minus the umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary file name next to {path}")


def scan(top: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to `top`, its directory entry) for everything under `top`, depth first,
    without following symlinks. The entries come from the directory listings: kind and inode
    cost no extra system call (a kernel tree has 80,000 of them)."""
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(top / rel_dir if rel_dir else top) as listing:
            for entry in listing:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                yield rel, entry
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
