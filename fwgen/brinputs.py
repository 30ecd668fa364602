"""What a Buildroot build depends on, fingerprinted for the rebuild planner (fwgen.rebuild)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fwgen import (
    defconfig,
    fingerprint,
    fsutil,
    layout,
    modules,
    patches,
    rebuild,
)
from fwgen.board import Board, KernelVariant
from fwgen.errors import FwgenError


def overlay_files(dirs: Sequence[Path]) -> dict[str, str]:
    """Path in the rootfs -> "<mode> <sha256>" (or "link <target>"), later overlays winning."""
    merged: dict[str, str] = {}
    for root in dirs:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            names = sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]
            for name in names:
                path = base / name
                rel = path.relative_to(root).as_posix()
                if path.is_symlink():
                    merged[rel] = f"link {os.readlink(path)}"
                else:
                    mode = oct(path.stat().st_mode & 0o7777)
                    merged[rel] = f"{mode} {fsutil.sha256_file(path)}"
    return merged


def board_files_hash(board: Board) -> str:
    files = [p for p in (board.buildroot.post_image_path(), board.buildroot.genimage_path()) if p]
    return json.dumps(fingerprint.files(files), sort_keys=True)


def collect_inputs(
    board: Board,
    variant: KernelVariant,
    defconfig_text: str,
    kernel_config: str | None,
) -> rebuild.Inputs:
    """The build's inputs; `kernel_config` is the sha256 of the kernel .config, if known."""
    series = patches.series(variant.patches_dir())
    return rebuild.Inputs(
        buildroot=f"{board.buildroot.version} {board.buildroot.sha256}",
        kernel=f"{variant.version} {variant.sha256}",
        defconfig=defconfig.symbol_values(defconfig_text),
        kernel_config=kernel_config,
        series=fingerprint.files(series),
        module=modules.content_hash(board.module_packages),
        overlays=overlay_files(board.overlay_dirs()),
        board_files=board_files_hash(board),
    )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_files(output: Path) -> dict[str, str]:
    """Target path -> package, from Buildroot's build/packages-file-list.txt."""
    owners: dict[str, str] = {}
    listing = layout.BuildrootBuild(output).package_file_list
    try:
        lines = listing.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return owners
    for line in lines:
        package, _, path = line.partition(",")
        if path:
            owners[path.removeprefix("./")] = package
    return owners


def has_build(output: Path) -> bool:
    build = layout.BuildrootBuild(output)
    return build.packages.is_dir() or build.host.is_dir()


def patched_series(output: Path, variant: KernelVariant) -> dict[str, str] | None:
    """The series in fwgen's global patch dir (name -> sha256, in order) if the kernel's build
    directory has been patched (by Buildroot, from there): the plan compares it with the
    recorded series to know whether that tree is the recorded series' and the patches are at
    hand to bring it to another (fwgen.rebuild.plan). None: no patched tree, or no series."""
    build = layout.BuildrootBuild(output)
    if not (build.kernel_tree(variant.version) / ".stamp_patched").exists():
        return None
    try:
        return fingerprint.files(patches.series(build.series_dir(variant.version)))
    except FwgenError:
        return None
