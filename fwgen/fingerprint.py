"""Fingerprints of build inputs, so rebuild decisions compare digests, not guesses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fwgen.fsutil import sha256_file


def _walk(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        base = Path(dirpath)
        found.extend(base / name for name in sorted(filenames))
        found.extend(base / name for name in dirnames if (base / name).is_symlink())
    return found


def tree_content(root: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 over every file's relative path, executable bit and content (folders named
    in `skip`, e.g. .git, left out at any depth)."""
    digest = hashlib.sha256()
    for path in _walk(root, skip):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            entry = f"L {rel} {os.readlink(path)}"
        else:
            executable = "x" if os.access(path, os.X_OK) else "-"
            entry = f"F {rel} {executable} {sha256_file(path)}"
        digest.update(entry.encode() + b"\n")
    return digest.hexdigest()


def tree_stat(root: Path) -> str:
    """sha256 over relative paths, sizes and mtimes: cheap enough for a kernel tree."""
    digest = hashlib.sha256()
    for path in _walk(root):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def files(paths: list[Path]) -> dict[str, str]:
    """name -> sha256, in the given order (a patch series, say)."""
    return {p.name: sha256_file(p) for p in paths}
