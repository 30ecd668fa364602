"""The Buildroot source tree of a build: the pinned release, extracted once per version, and
the kernel tarball placed where Buildroot's own download and hash check find it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from fwgen import (
    fsutil,
    sources,
)
from fwgen.board import Board, Download
from fwgen.errors import FwgenError
from fwgen.log import log


def tree_version(tree: Path) -> str:
    """BR2_VERSION as the tree's top Makefile declares it."""
    makefile = Path(tree) / "Makefile"
    try:
        text = makefile.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise FwgenError(
            f"{tree} is not a Buildroot tree (no Makefile)",
            "give the top directory of a Buildroot release, or its tarball",
        ) from None
    match = re.search(r"^export BR2_VERSION\s*:=\s*(\S+)", text, re.MULTILINE)
    if not match:
        raise FwgenError(
            f"{makefile}: no BR2_VERSION: not a Buildroot tree",
            "give the top directory of a Buildroot release, or its tarball",
        )
    return match.group(1)


def check_tree_version(tree: Path, board: Board) -> None:
    found = tree_version(tree)
    if found != board.buildroot.version:
        raise FwgenError(
            f"{tree} is Buildroot {found}, but board '{board.name}' is pinned to "
            f"Buildroot {board.buildroot.version} ({board.source}: key 'buildroot.version')",
            f"use a Buildroot {board.buildroot.version} tree, or drop --buildroot-src to use "
            "the pinned release",
        )


def extracted_tree(download: Download) -> Path | None:
    """The cache's extraction of a download, if it exists (no work done)."""
    root = sources.source_dir() / download.sha256[:16]
    if not root.is_dir():
        return None
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else root


def buildroot_tree(board: Board, tarball: Path | None, src: Path | None) -> Path:
    """The Buildroot tree to build with, of the recipe's version."""
    if src is not None:
        given = Path(src).expanduser()
        if given.is_dir():
            tree = given.resolve()
        elif given.is_file():
            tree = sources.extract(given)
        else:
            raise FwgenError(
                f"--buildroot-src {given}: no such file or directory",
                "give a Buildroot tree or release tarball",
            )
    else:
        assert tarball is not None
        tree = sources.extract(tarball, board.buildroot.sha256)
    check_tree_version(tree, board)
    return tree


def place_kernel_tarball(tarball: Path, dl_dir: Path) -> Path:
    """Put the verified kernel tarball where Buildroot looks for it: <dl>/linux/<file>."""
    target = dl_dir / "linux" / tarball.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        try:
            if os.path.samefile(target, tarball):
                return target
        except OSError:
            pass
        if fsutil.sha256_file(target) == fsutil.sha256_file(tarball):
            return target
        log.warning("%s differs from the verified %s: replacing it", target, tarball)
    with fsutil.replacing(target) as tmp:
        tmp.unlink()  # os.link wants the name free
        try:
            os.link(tarball, tmp)
        except OSError:
            shutil.copyfile(tarball, tmp)
    return target
