"""The kernel-only build: the board's kernel, patches, config and modules, without Buildroot.

A fast loop for kernel work: the same inputs a Buildroot build uses (verified source, the
board's patch series, Buildroot's host fixups for old kernels, the kconfig stage's .config,
the sources of br2-external's kernel-module packages), built with the kernel's own Kbuild,
and an initramfs made of the given rootfs plus the board's overlays and the modules. The
result is an images/ directory with the same names as a Buildroot build's, plus manifest.json
and SHA256SUMS.

Rebuild rules (explicit, see `fwgen.kernelplan.decide`): the patched source tree and the
object tree are kept between runs. If the kernel source, the host fixups or the toolchain
differ from the last run, both are made afresh. If only the patch series differs, the kept
tree is brought to the new series in place (fwgen.kerneltree.update: only the files that
differ are rewritten) and the objects are kept, so Kbuild recompiles only what depends on
those files. Otherwise Kbuild rebuilds incrementally (a changed .config included: Kbuild
tracks config dependencies itself). The kconfig stage and olddefconfig are skipped when
nothing they read changed (`kernelplan.config_kept`). The modules, the modules staging tree,
the initramfs and images/ are redone on every run: they take seconds. Kbuild itself runs
through fwgen.kbuild.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from fwgen import (
    buildstate,
    ccache,
    fsutil,
    images,
    initramfs,
    kbuild,
    kconfig,
    kernelplan,
    kerneltree,
    layout,
    manifest,
    patches,
)
from fwgen.board import Board, KernelVariant
from fwgen.errors import FwgenError
from fwgen.log import log
from fwgen.manifest import Manifest
from fwgen.toolchain import find as find_toolchain


def clean(output: Path, board: Board, variant: str) -> None:
    """--clean: forget the kernel-only build of this board and variant."""
    work = layout.kernel_only(output, board.name, variant).work
    if work.exists():
        log.info("removing %s (--clean)", work)
        shutil.rmtree(work)


def build_kernel_only(
    board: Board,
    variant_name: str | None,
    *,
    rootfs: Path,
    output: Path = Path("build"),
    kernel_src: str | None = None,
    cross_compile: str | None = None,
    jobs: int | None = None,
    mirrors: Sequence[str] = (),
    offline: bool = False,
    variant: KernelVariant | None = None,
    module_packages: Sequence[str] | None = None,
    ccache_remote: ccache.Remote | None = None,
) -> Path:
    """Build zImage, dtb, modules and an initramfs into <output>/<board>-<variant>-kernel/images.

    `variant` overrides the recipe's variant object and `module_packages` the module packages
    built (tests use them to build a kernel without the feature patches, and without the
    module that needs them); `ccache_remote` shares compile results with other hosts
    (fwgen.ccache).
    """
    name = variant_name or board.default_kernel
    variant = variant or board.kernel(name)
    if module_packages is None:
        module_packages = board.module_packages
    if not rootfs.exists():
        raise FwgenError(
            f"--rootfs {rootfs}: no such file or directory",
            "give a root filesystem directory or a cpio(.gz) archive",
        )
    build = layout.kernel_only(output, board.name, name)
    work, src, obj, state_file = build.work, build.src, build.obj, build.state
    work.mkdir(parents=True, exist_ok=True)
    log_file = build.build_log
    out = build.images
    log.info("kernel-only build of %s, kernel variant %s; log: %s", board.name, name, log_file)

    toolchain = find_toolchain(cross_compile, [layout.buildroot(output, board.name, name).output])
    log.info("toolchain: %s (%s)", toolchain.version, toolchain.origin)
    previous = kernelplan.load_state(state_file)
    source = kernelplan.resolve_source(variant, kernel_src, mirrors=mirrors, offline=offline)
    source = source.with_content(previous)
    version = kconfig.kernel_version(source.tree)
    log.info("kernel source: linux %s (%s)", version, source.identity.get("tarball") or source.tree)
    series = patches.series(variant.patches_dir())
    current = kernelplan.Inputs(
        source=source.identity,
        series=tuple((p.name, fsutil.sha256_file(p)) for p in series),
        fixups=kerneltree.HOST_FIXUPS_VERSION,
        toolchain={"prefix": toolchain.prefix, "version": toolchain.version},
        outputs=kernelplan.outputs_inputs(board, variant, module_packages, rootfs),
    )
    decision = kernelplan.decide(
        previous,
        current,
        lambda: out.is_dir() and not images.verify(out),
        kept=src.is_dir() and obj.is_dir(),
    )
    log.info("%s: %s", decision.action, "; ".join(decision.reasons))
    if decision.action == kernelplan.UP_TO_DATE:
        with log_file.open("a") as logf:
            logf.write(f"fwgen: up to date: {decision.reasons[0]}\n")
        log.info("images: %s (nothing to do)", out)
        return out
    log_file.write_text("")
    if decision.action != kernelplan.INCREMENTAL:
        # No record while the tree changes: an interrupted run starts afresh next time.
        buildstate.forget(state_file)
    if decision.action == kernelplan.FRESH:
        shutil.rmtree(obj, ignore_errors=True)
        kerneltree.prepare(source.tree, src, variant.patches_dir())
    rewritten: list[str] | None = None  # None: the whole tree may have changed
    if decision.action == kernelplan.NEW_SERIES:
        rewritten = kerneltree.update(source.tree, src, variant.patches_dir())
        log.info(
            "  files that differ from the last build's tree: %s", " ".join(rewritten) or "none"
        )
    elif decision.action == kernelplan.INCREMENTAL:
        rewritten = []
    # The tree is this build's; its images are not yet: until they are, nothing is up to date.
    buildstate.save(state_file, buildstate.State(current, complete=False))
    obj.mkdir(parents=True, exist_ok=True)

    config_path = build.kernel_config
    kept_config = kernelplan.config_kept(previous, current, rewritten, config_path)
    if kept_config:
        log.info("kernel .config: kept (%s)", kept_config)
    else:
        config = kconfig.configure_variant(variant, src, cross_compile=toolchain.prefix)
        if not config_path.exists() or config_path.read_text() != config.text():
            config.write(config_path)
    stats_log = build.ccache_stats
    stats_log.unlink(missing_ok=True)
    if ccache_remote is not None:
        log.info("compile cache: local, then remote %s", ccache_remote.describe())
        ccache.announce(ccache_remote)
    runner = kbuild.KbuildRunner(
        src,
        obj,
        board.arch,
        toolchain,
        jobs or os.cpu_count() or 1,
        log_file,
        ccache.environment(ccache_remote, base_dir=work, stats_log=stats_log),
    )
    if not kept_config:
        runner.make("olddefconfig", what="olddefconfig")
    kconfig.verify_config(config_path, variant.requirements)
    kernel_image = board.buildroot.kernel_image  # the recipe's, as Buildroot builds it
    runner.make(kernel_image, "dtbs", "modules", what="kernel")
    kconfig.verify_config(config_path, variant.requirements)
    release = kbuild.kernel_release(obj)

    built = kbuild.build_modules(runner, build.modules, module_packages)
    summary = ccache.read_stats(stats_log).summary(ccache_remote)
    log.info("%s", summary)
    with log_file.open("a") as logf:
        logf.write(f"fwgen: {summary}\n")
    staging = kbuild.stage_modules(
        runner, [build.modules / p for p in module_packages], build.staging
    )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    dtb = f"{variant.device_tree}.dtb"
    boot = obj / "arch" / board.arch / "boot"
    shutil.copy2(boot / kernel_image, out / kernel_image)
    shutil.copy2(boot / "dts" / dtb, out / dtb)
    initramfs.pack(out / "rootfs.cpio.gz", [rootfs, *board.overlay_dirs(), staging])
    images.finalize(
        out,
        Manifest(
            board=board.name,
            build="kernel-only",
            kernel=manifest.KernelBuild(
                variant=name,
                version=version,
                release=release,
                source=source.public_identity(),
                series=dict(current.series),
                config_sha256=fsutil.sha256_file(config_path),
                device_tree=variant.device_tree,
            ),
            toolchain={**current.toolchain, "origin": toolchain.origin},
            modules=tuple(
                manifest.Module(
                    name=module,
                    package=ko.parent.name,
                    source=current.outputs["module packages"][ko.parent.name],
                    sha256=fsutil.sha256_file(ko),
                )
                for module, ko in built.items()
            ),
            rootfs=current.outputs["root filesystem"],
            overlays=current.outputs["overlays"],
        ),
    )
    done = dataclasses.replace(current, config=fsutil.sha256_file(config_path))
    buildstate.save(state_file, buildstate.State(done, complete=True))
    log.info("images: %s (kernel %s)", out, release)
    return out
