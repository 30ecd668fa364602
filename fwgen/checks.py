"""Checks of command-line inputs, made before any download, build or boot starts.

Each raises FwgenError naming the option and what is wrong with its value, so a bad argument
costs the user nothing but the message.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from fwgen.errors import FwgenError


def existing(path: Path | str, option: str, what: str = "file or directory") -> Path:
    """`path` must exist (a file or a directory)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FwgenError(f"{option} {path}: no such file or directory", f"give an existing {what}")
    return path


def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path("/")


def _writable(folder: Path, option: str, shown: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "is read-only" if _read_only_fs(folder) else "is not writable for you"
        raise FwgenError(
            f"{option} {shown}: {folder} {why}",
            f"give {option} a place you can write (e.g. under {Path.home()})",
        )


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def output_dir(path: Path | str, option: str) -> Path:
    """`path` is (or can become) a directory fwgen may write into."""
    path = Path(path).expanduser()
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise FwgenError(
            f"{option} {path}: {base} exists and is not a directory",
            f"give {option} a directory (or a path that does not exist yet)",
        )
    _writable(base, option, path)
    return path


def output_file(path: Path | str, option: str) -> Path:
    """`path` is (or can become) a file fwgen may write; its directory must exist."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise FwgenError(f"{option} {path}: is a directory", f"give {option} a file name")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise FwgenError(
            f"{option} {path}: the directory {parent} does not exist",
            f"create it first (mkdir -p {shlex.quote(str(parent))}) or give another {option}",
        )
    _writable(parent, option, path)
    return path
