"""`--kernel-src` for any stage: a kernel source tree, or a tarball fwgen extracts safely."""

from __future__ import annotations

import tarfile
from pathlib import Path

from fwgen import sources
from fwgen.errors import FwgenError

_MARKERS = ("Makefile", "Kconfig")


def kernel_source(arg: str | Path) -> Path:
    """The top of a kernel tree: `arg` itself if it is one, or `arg` (a tarball) extracted."""
    path = Path(arg).expanduser()
    if path.is_dir():
        return _checked_tree(path, path)
    if path.is_file() and _is_tarball(path):
        return _checked_tree(sources.extract(path), path)
    if path.exists():
        raise FwgenError(
            f"{path}: neither a directory nor a tarball",
            "give a kernel source tree or its tarball (linux-X.Y.tar.xz/.gz/.bz2)",
        )
    raise FwgenError(
        f"{path}: no such file or directory",
        "give a kernel source tree or its tarball (linux-X.Y.tar.xz/.gz/.bz2)",
    )


def _is_tarball(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _checked_tree(tree: Path, given: Path) -> Path:
    missing = [name for name in _MARKERS if not (tree / name).is_file()]
    if missing:
        where = "the top of the tree" if tree == given else f"the top of {given}'s contents"
        raise FwgenError(
            f"{given}: not a kernel source tree: no {' or '.join(missing)} at {where} ({tree})",
            "give the top directory of a linux source tree (the one holding Makefile and "
            "Kconfig), or the kernel's release tarball",
        )
    return tree
