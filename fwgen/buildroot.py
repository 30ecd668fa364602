"""The full Buildroot build of a board: `fwgen build BOARD`.

The flow, each step deciding nothing a previous one decided:

1. host checks (fwgen doctor's Buildroot list) and free disk space;
2. the pinned Buildroot and kernel tarballs, fetched and verified (fwgen.sources); Buildroot
   extracted once per version into the cache; the kernel tarball hard-linked (or copied) into
   Buildroot's download directory, where its own hash check finds it;
3. the Buildroot defconfig rendered from the recipe (fwgen.defconfig), and the kernel pin
   written from the recipe as Buildroot hash files;
4. a rebuild plan from the recorded inputs of the last build (fwgen.rebuild);
5. `make defconfig` with the external tree, and proof that every requested line survived;
6. the plan's steps (a new series into the kept kernel tree, Buildroot's clean targets), then
   `make toolchain` (with progress and a full log, fwgen.brmake) unless the last complete
   build here built it;
7. the kernel .config from the kconfig stage (defconfig + fragment + requirements), made with
   the toolchain Buildroot just built, and the reconfiguration it needs; then the build;
8. the kernel's final .config re-checked against the requirements;
9. images/ with manifest.json and SHA256SUMS (fwgen.images), as the kernel-only path does.

Everything lives in <output>/<board>-<variant>/ (Buildroot's O=), with fwgen's own files
(rendered configs, logs, state) in its fwgen/ subdirectory (fwgen.layout).

This module runs the flow; its parts: brprepare (options, every decision made before make
runs, host checks), brtree (Buildroot's own tree), brinputs (the fingerprints the rebuild
planner compares), brdryrun (--dry-run), brmake (Buildroot's make), brimages (images/).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwgen import (
    brdryrun,
    brimages,
    brinputs,
    brmake,
    brprepare,
    brtree,
    buildstate,
    ccache,
    defconfig,
    fingerprint,
    fsutil,
    images,
    kconfig,
    kerneltree,
    mirrors,
    paths,
    prefetch,
    rebuild,
    toolchain,
)
from fwgen.board import load_board
from fwgen.brprepare import BuildOptions, Prepared
from fwgen.errors import FwgenError
from fwgen.log import log
from fwgen.manifest import Manifest

# --- the build ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    images: Path
    manifest: Manifest
    log: Path


def build(options: BuildOptions) -> BuildResult | None:
    """The whole build (None for a dry run, which prints its description instead)."""
    board = load_board(options.board)
    variant_name = options.kernel or board.default_kernel
    board.kernel(variant_name)
    notes = brprepare.check_host(
        brprepare.output_dir(options, board, variant_name), dry_run=options.dry_run
    )
    prepared = brprepare.prepare(options)
    if options.dry_run:
        print(brdryrun.describe(prepared, notes), end="")
        return None
    return run(prepared, options)


def run(prepared: Prepared, options: BuildOptions) -> BuildResult:
    """Steps 6-9 for a prepared build."""
    p = prepared
    assert p.tree is not None and p.kernel_tree is not None and p.kernel_tarball is not None
    start = time.monotonic()
    where = p.layout
    where.fwgen.mkdir(parents=True, exist_ok=True)
    log.info("building %s, kernel %s in %s", p.board.name, p.variant_name, p.output)
    for line in p.plan.describe():
        log.info("plan: %s", line)
    if p.plan.unchanged and (done := _up_to_date(p)) is not None:
        return done
    state_path = where.state
    brtree.place_kernel_tarball(p.kernel_tarball, p.locations.dl_dir)
    stats_log = where.ccache_stats
    stats_log.unlink(missing_ok=True)
    if options.ccache_remote is not None:
        log.info(
            "compile cache: local %s, then remote %s",
            p.locations.ccache_dir,
            options.ccache_remote.describe(),
        )
        ccache.announce(options.ccache_remote)
    make = brmake.Make(
        p.tree,
        p.output,
        environment=ccache.environment(
            options.ccache_remote, base_dir=p.output, stats_log=stats_log
        ),
    )
    steps_log = where.steps_log
    steps_log.write_text("")
    build_log = where.build_log
    try:
        if p.plan.update_kernel_series:
            update_kernel_series(p, state_path)  # reads the old series in the global patch dir
        defconfig.write_global_patch_dir(p.locations.patch_dir, p.board, p.variant_name)
        defconfig.write_if_changed(where.defconfig, p.defconfig_text)
        configure(make, p, steps_log)
        apply_plan(make, p, steps_log)
        buildstate.save(state_path, buildstate.State(p.inputs, complete=False))
        info = package_info(make, p, steps_log)
        if brprepare.is_offline(options):
            check_offline_sources(info, p.locations.dl_dir, brprepare.primary_site(options.mirrors))
        if options.prefetch > 0:
            prefetch.prefetch(info, p.tree, p.locations.dl_dir, jobs=options.prefetch)
        _rotate(build_log)
        log.info("Buildroot build log: %s", build_log)
        progress = brmake.Progress.from_show_info(info, p.output)
        if brprepare.toolchain_built(p):
            log.info("toolchain: built by the last complete build here (no make toolchain)")
        else:
            make.build(build_log, progress, targets=["toolchain"])
        inputs = configure_kernel(make, p, steps_log)
        buildstate.save(state_path, buildstate.State(inputs, complete=False))
        make.build(build_log, progress)
    except KeyboardInterrupt:
        log.error("fwgen: %s", brmake.interrupted_message(p.output, options.command))
        raise
    _report_ccache(stats_log, options.ccache_remote, build_log)
    final_config = p.kernel_build_dir / ".config"
    kconfig.verify_config(final_config, p.variant.requirements)
    built = brimages.collect_images(dataclasses.replace(p, inputs=inputs), build_log)
    buildstate.save(state_path, buildstate.State(inputs, complete=True))
    log.info("images: %s (%s)", p.layout.images, brmake.elapsed(start))
    return BuildResult(p.layout.images, built, build_log)


def package_info(make: brmake.Make, p: Prepared, steps_log: Path) -> dict[str, Any]:
    """`make show-info` (the packages, for progress and the source checks), or its recorded
    answer when nothing it is made from changed: Buildroot's .config, the Buildroot tree and
    br2-external's packages. It parses every package of Buildroot: seconds."""
    key = hashlib.sha256(
        "\n".join(
            [
                fsutil.sha256_file(p.layout.dot_config),
                str(p.tree),
                brtree.tree_version(p.tree) if p.tree else "",
                fingerprint.tree_content(paths.br2_external_dir(), skip=("patches",)),
            ]
        ).encode()
    ).hexdigest()
    recorded = p.layout.show_info
    try:
        data = json.loads(recorded.read_text(encoding="utf-8"))
        if data.get("key") == key and isinstance(data.get("info"), dict):
            return data["info"]
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        pass
    info = make.show_info(steps_log)
    fsutil.write_atomic(recorded, json.dumps({"key": key, "info": info}) + "\n", mode=0o644)
    return info


def _report_ccache(stats_log: Path, remote: ccache.Remote | None, build_log: Path) -> None:
    """This build's compile-cache hit rates, on the console and at the end of the build log."""
    summary = ccache.read_stats(stats_log).summary(remote)
    log.info("%s", summary)
    with build_log.open("a", encoding="utf-8") as out:
        out.write(f"fwgen: {summary}\n")


def _up_to_date(p: Prepared) -> BuildResult | None:
    """The last complete build, if nothing changed since: same inputs (the plan says so), the
    same kernel .config from the kconfig stage, and images/ as its manifest recorded them.
    Buildroot's own `make` would redo the root filesystem and the SD card image for nothing."""
    assert p.kernel_tree is not None and p.old_state is not None
    out = p.layout.images
    if toolchain.buildroot_toolchain(p.output) is None or images.verify(out):
        return None
    digest = brinputs.sha256_text(brprepare.kernel_config_text(p.variant, p.kernel_tree, p.output))
    if digest != p.old_state.inputs.kernel_config:
        return None
    log.info(
        "up to date: no input changed since the last complete build, the kernel .config is "
        "the same, and %s matches its manifest; nothing to do (--clean rebuilds)",
        out,
    )
    return BuildResult(out, images.load_manifest(out), p.layout.build_log)


def update_kernel_series(p: Prepared, state_path: Path) -> None:
    """Bring the kernel's build directory from the series Buildroot patched it with (still in
    the global patch dir) to the recipe's series, rewriting only the files that differ; the
    plan's `linux-clean-for-rebuild` then makes Buildroot rebuild it incrementally.

    Until the new inputs are recorded the tree is neither series': the state says so (no
    series), so that an interrupted run is followed by a `linux-dirclean`."""
    assert p.old_state is not None and p.kernel_tree is not None
    marked = dataclasses.replace(p.old_state.inputs, series=None)
    log.info("new series into %s", p.kernel_build_dir)
    rewritten = kerneltree.update(
        p.kernel_tree,
        p.kernel_build_dir,
        p.variant.patches_dir(),
        old_series=p.layout.series_dir(p.variant.version),
        before_change=lambda: buildstate.save(state_path, buildstate.State(marked, complete=False)),
    )
    log.info("  files that differ from the last build's tree: %s", " ".join(rewritten) or "none")


def configure_kernel(make: brmake.Make, p: Prepared, steps_log: Path) -> rebuild.Inputs:
    """The kconfig stage with Buildroot's toolchain, and what its result asks of the build."""
    assert p.kernel_tree is not None
    text = brprepare.kernel_config_text(p.variant, p.kernel_tree, p.output)
    if defconfig.write_if_changed(p.locations.kernel_config, text):
        log.info("kernel .config written: %s", p.locations.kernel_config)
    digest, step = brprepare.kernel_config_step(p, text)
    for line in step.reasons:
        log.info("plan: %s", line)
    if step.invalidate:
        log.info("make %s", " ".join(step.invalidate))
        make.run(list(step.invalidate), steps_log, what="make " + " ".join(step.invalidate))
    return dataclasses.replace(p.inputs, kernel_config=digest)


def configure(make: brmake.Make, p: Prepared, steps_log: Path) -> None:
    """`make defconfig` with the external tree; every requested line must survive."""
    make.run(
        ["defconfig"],
        steps_log,
        what="make defconfig",
        args=[f"BR2_EXTERNAL={paths.br2_external_dir()}", f"BR2_DEFCONFIG={p.layout.defconfig}"],
    )
    dot_config = p.layout.dot_config
    dropped = defconfig.dropped_lines(p.defconfig_text, dot_config)
    if dropped:
        raise FwgenError(
            f"Buildroot dropped {len(dropped)} line(s) of the rendered defconfig "
            f"({p.layout.defconfig}):\n" + defconfig.describe_dropped(dropped, dot_config),
            "a symbol that does not exist in this Buildroot or whose dependencies are unmet: "
            f"fix the recipe ({p.board.source}) or fwgen/templates/defconfig.j2",
        )
    log.info(
        "defconfig: all %d lines survived olddefconfig",
        len(defconfig.requested_lines(p.defconfig_text)),
    )


def apply_plan(make: brmake.Make, p: Prepared, steps_log: Path) -> None:
    plan = p.plan
    if plan.full_clean:
        if brinputs.has_build(p.output):
            log.info("full rebuild: make clean")
            make.run(["clean"], steps_log, what="make clean")
        return
    if plan.invalidate:
        log.info("make %s", " ".join(plan.invalidate))
        make.run(list(plan.invalidate), steps_log, what="make " + " ".join(plan.invalidate))
    target = p.layout.target
    for rel in plan.remove_from_target:
        path = target / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
            log.info("removed %s (no longer in an overlay)", path)


def check_offline_sources(info: dict[str, Any], dl_dir: Path, mirror: str = "") -> None:
    """--offline: every source Buildroot will want is in its download dir or on the mirror."""
    needed = mirrors.needed_files(info)
    absent = [item for item in needed if not (dl_dir / item.rel).exists()]
    if mirror:
        absent = mirrors.missing_from(mirror, absent)
    missing = [f"  {item.rel}  ({item.package})" for item in absent]
    if missing:
        where = f"neither in {dl_dir} nor on the mirror {mirror}" if mirror else f"not in {dl_dir}"
        raise FwgenError(
            f"offline, and {len(missing)} source(s) Buildroot needs are {where}:\n"
            + "\n".join(missing),
            "on a machine with network access, export a mirror that holds them (fwgen mirror "
            "BOARD -o DIR) and build with --mirror URL_OF_DIR --offline; or drop --offline",
        )
    log.info(
        "offline: all %d sources Buildroot needs are in %s%s",
        len(needed),
        dl_dir,
        f" or on {mirror}" if mirror else "",
    )


def _rotate(path: Path) -> None:
    if path.exists():
        os.replace(path, path.with_name(path.name + ".old"))
