"""A finished Buildroot build's images/: the files the board needs, manifest.json, SHA256SUMS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fwgen import (
    brprepare,
    brtree,
    fingerprint,
    fsutil,
    images,
    layout,
    manifest,
    modules,
    toolchain,
)
from fwgen.board import Board, KernelVariant
from fwgen.errors import FwgenError
from fwgen.manifest import Manifest


def expected_images(board: Board, variant: KernelVariant) -> list[str]:
    names = [board.buildroot.kernel_image, f"{Path(variant.device_tree).name}.dtb", "rootfs.ext2"]
    if board.buildroot.genimage_config:
        names += ["sdcard.img", "sdcard.img.bmap"]
    if board.buildroot.post_image_script:
        names.append("start-qemu.sh")
    return names


def collect_images(p: brprepare.Prepared, build_log: Path) -> Manifest:
    """Check images/ holds what the board needs, then write manifest.json and SHA256SUMS."""
    out = p.layout.images
    missing = [n for n in expected_images(p.board, p.variant) if not (out / n).is_file()]
    if missing:
        raise FwgenError(
            f"the build finished but {out} lacks: {', '.join(missing)}",
            f"look at the end of {build_log} (the post-image script makes sdcard.img, its "
            ".bmap and start-qemu.sh)",
        )
    card = out / "sdcard.img"
    if card.exists():
        size = card.stat().st_size
        if size & (size - 1):
            raise FwgenError(
                f"{card} is {size} bytes, not a power of two: QEMU's SD card refuses it",
                f"make rootfs_size a power of two ({p.board.source})",
            )
    return images.finalize(out, build_manifest(p))


def build_manifest(p: brprepare.Prepared) -> Manifest:
    release_file = p.kernel_build_dir / "include" / "config" / "kernel.release"
    release = release_file.read_text().strip() if release_file.is_file() else ""
    return Manifest(
        board=p.board.name,
        build="buildroot",
        kernel=manifest.KernelBuild(
            variant=p.variant_name,
            version=p.variant.version,
            release=release,
            source=manifest.tarball_source(p.variant.file, p.variant.sha256),
            series=dict(p.inputs.series or {}),
            config_sha256=p.inputs.kernel_config,
            device_tree=p.variant.device_tree,
        ),
        buildroot=manifest.BuildrootInputs(
            version=p.board.buildroot.version,
            file=p.board.buildroot.file,
            sha256=p.board.buildroot.sha256,
            tree_version=brtree.tree_version(p.tree) if p.tree else "",
            defconfig_sha256=fsutil.sha256_file(p.layout.defconfig),
        ),
        toolchain=_toolchain(p.output),
        modules=_modules(p.output, release, p.board.module_packages),
        overlays={
            o: fingerprint.tree_content(d)
            for o, d in zip(p.board.overlays, p.board.overlay_dirs(), strict=True)
        },
    )


def _modules(output: Path, release: str, packages: Sequence[str]) -> tuple[manifest.Module, ...]:
    """The out-of-tree modules in the target (sha256 "" when one is missing)."""
    found = []
    for package in packages:
        for name in modules.module_names(package):
            ko = sorted(
                (layout.BuildrootBuild(output).target / "lib" / "modules").glob(
                    f"{release or '*'}/**/{name}.ko"
                )
            )
            found.append(
                manifest.Module(
                    name=name,
                    package=package,
                    source=fingerprint.tree_content(modules.source_dir(package)),
                    sha256=fsutil.sha256_file(ko[0]) if ko else "",
                )
            )
    return tuple(found)


def _toolchain(output: Path) -> dict[str, str]:
    prefix = toolchain.buildroot_toolchain(output)
    if not prefix:
        return {"origin": "Buildroot internal toolchain"}
    version = toolchain.gcc_version(f"{prefix}gcc") or ""
    return {
        "origin": "Buildroot internal toolchain",
        "prefix": Path(prefix).name,
        "version": version,
    }
