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
(rendered configs, logs, state) in its fwgen/ subdirectory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwgen import (
    __version__,
    brmake,
    ccache,
    defconfig,
    doctor,
    fingerprint,
    fsutil,
    images,
    kconfig,
    kerneltree,
    layout,
    mirrors,
    modules,
    patches,
    paths,
    prefetch,
    rebuild,
    sources,
    toolchain,
)
from fwgen.board import Board, Download, KernelVariant, load_board
from fwgen.errors import FwgenError
from fwgen.log import log

# What a Buildroot build of this size needs (toolchain, kernel, host tools, root filesystem):
# about 10 GB in the output directory, plus downloads and ccache in fwgen's cache.
NEEDED_FREE_BYTES = 15 * 1024**3


@dataclass(frozen=True)
class BuildOptions:
    board: str
    kernel: str | None = None
    output_root: Path = Path("build")
    jobs: int = 0
    clean: bool = False
    dry_run: bool = False
    mirrors: Sequence[str] = ()
    offline: bool = False
    prefetch: int = 0  # parallel source downloads before the build; 0: let Buildroot do it
    buildroot_src: Path | None = None  # a Buildroot tree or tarball instead of the pinned one
    command: str = "fwgen build"  # how the user ran it, for "run it again" messages
    ccache_remote: ccache.Remote | None = None  # a compile cache shared with other hosts


@dataclass
class Prepared:
    """Everything decided before Buildroot runs."""

    board: Board
    variant_name: str
    variant: KernelVariant
    output: Path
    tree: Path | None  # None in a dry run when Buildroot is not extracted yet
    tree_shown: Path  # `tree`, or where the first real run extracts it
    defconfig_text: str
    inputs: rebuild.Inputs  # kernel_config: the last build's, until the kconfig stage runs
    old_state: rebuild.State | None
    plan: rebuild.Plan
    kernel_tarball: Path | None
    kernel_tree: Path | None  # the extracted kernel source (None in a dry run without it)
    downloads: dict[str, str] = field(default_factory=dict)  # file -> status, for the dry run

    @property
    def layout(self) -> layout.BuildrootBuild:
        return layout.BuildrootBuild(self.output)

    @property
    def locations(self) -> defconfig.Locations:
        return defconfig.Locations.for_output(self.output)

    @property
    def kernel_build_dir(self) -> Path:
        return self.layout.kernel_tree(self.variant.version)


# --- Buildroot itself ----------------------------------------------------------------------


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


def _extracted_tree(download: Download) -> Path | None:
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


# --- inputs ----------------------------------------------------------------------------------


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
        module=modules.content_hash(),
        overlays=overlay_files(board.overlay_dirs()),
        board_files=board_files_hash(board),
    )


def _sha256_text(text: str) -> str:
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


def _has_build(output: Path) -> bool:
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


# --- preparing ------------------------------------------------------------------------------


def output_dir(options: BuildOptions, board: Board, variant_name: str) -> Path:
    return layout.buildroot(options.output_root, board.name, variant_name).output


def is_offline(options: BuildOptions) -> bool:
    return sources.is_offline(options.offline)


def primary_site(mirrors: Sequence[str]) -> str:
    """BR2_PRIMARY_SITE: the first mirror (--mirror, then $FWGEN_MIRROR)."""
    found = sources.mirror_list(mirrors)
    return found[0] if found else ""


def _kernel_tree(variant: KernelVariant, tarball: Path | None, *, dry_run: bool) -> Path | None:
    """The extracted kernel source the kconfig stage reads; a dry run extracts nothing."""
    if dry_run:
        return _extracted_tree(variant)
    assert tarball is not None
    return sources.extract(tarball, variant.sha256)


def kernel_config_text(variant: KernelVariant, kernel_tree: Path, output: Path) -> str:
    """The kconfig stage's .config, made with the toolchain Buildroot built in `output`.

    Newer kernels' Kconfig asks the compiler (cc-option, CC_VERSION_TEXT, ...), so the result
    is the one Buildroot's own olddefconfig will see only with that same compiler.
    """
    chain = toolchain.of_buildroot(output)
    log.info("kconfig stage with Buildroot's toolchain: %s", chain.version)
    return kconfig.configure_variant(variant, kernel_tree, cross_compile=chain.prefix).text()


def _download_status(downloads: Sequence[Download], offline: bool) -> dict[str, str]:
    status = {}
    for d in downloads:
        cached = sources.cached_path(d)
        if cached.is_file():
            status[d.file] = f"in the cache ({cached}); verified again before use"
        elif offline:
            status[d.file] = "not in the cache, and --offline: a real run stops here"
        else:
            status[d.file] = f"not in the cache: would download from {d.urls[0]}"
    return status


def _sources(
    options: BuildOptions, board: Board, variant: KernelVariant
) -> tuple[dict[str, Path], dict[str, str], Path | None]:
    """(fetched file -> path, dry-run download status, Buildroot tree or None)."""
    downloads: list[Download] = [variant]
    if options.buildroot_src is None:
        downloads.insert(0, board.buildroot)
    if not options.dry_run:
        got = sources.fetch(downloads, mirrors=options.mirrors, offline=options.offline)
        fetched = {d.file: p for d, p in zip(downloads, got, strict=True)}
        tree = buildroot_tree(board, fetched.get(board.buildroot.file), options.buildroot_src)
        return fetched, {}, tree
    # A dry run downloads and extracts nothing; it uses what is already there.
    if options.buildroot_src is not None:
        return (
            {},
            _download_status(downloads, is_offline(options)),
            buildroot_tree(board, None, options.buildroot_src),
        )
    tree = _extracted_tree(board.buildroot)
    if tree is not None:
        check_tree_version(tree, board)
    return {}, _download_status(downloads, is_offline(options)), tree


def prepare(options: BuildOptions) -> Prepared:
    """Steps 2-5: resolve every input and decide the plan; a dry run changes nothing."""
    board = load_board(options.board)
    variant_name = options.kernel or board.default_kernel
    variant = board.kernel(variant_name)
    output = output_dir(options, board, variant_name)
    fetched, status, tree = _sources(options, board, variant)
    expected = sources.source_dir() / board.buildroot.sha256[:16]
    kernel_tarball = fetched.get(variant.file)
    kernel_tree = _kernel_tree(variant, kernel_tarball, dry_run=options.dry_run)
    site = primary_site(options.mirrors)
    text = defconfig.render(
        board,
        variant_name,
        defconfig.Locations.for_output(output),
        jobs=options.jobs,
        primary_site=site,
        primary_site_only=bool(site) and is_offline(options),
    )
    old_state = rebuild.load_state(layout.BuildrootBuild(output).state)
    last_config = old_state.inputs.kernel_config if old_state else None
    inputs = collect_inputs(board, variant, text, last_config)
    plan = rebuild.plan(
        old_state,
        inputs,
        clean=options.clean,
        output_exists=_has_build(output),
        package_files=package_files(output),
        patched_series=patched_series(output, variant),
    )
    return Prepared(
        board=board,
        variant_name=variant_name,
        variant=variant,
        output=output,
        tree=tree,
        tree_shown=tree or expected / f"buildroot-{board.buildroot.version}",
        defconfig_text=text,
        inputs=inputs,
        old_state=old_state,
        plan=plan,
        kernel_tarball=kernel_tarball,
        kernel_tree=kernel_tree,
        downloads=status,
    )


# --- host checks ---------------------------------------------------------------------------


def check_host(output: Path, *, dry_run: bool) -> list[str]:
    """doctor's Buildroot checks (an error, or notes in a dry run) and a free-space warning."""
    notes = []
    if dry_run:
        missing = [f for f in doctor.check(["build"], []) if not f.ok]
        if missing:
            notes.append(
                "host lacks: "
                + ", ".join(f.need.what for f in missing)
                + f" ({doctor.install_line(missing)})"
            )
    else:
        doctor.require(["build"])
    free = free_bytes(output)
    if free is not None and free < NEEDED_FREE_BYTES:
        text = (
            f"only {free / 1024**3:.1f} GB free for {output}; a Buildroot build of this board "
            f"needs about {NEEDED_FREE_BYTES // 1024**3} GB (toolchain, kernel, host tools)"
        )
        log.warning("warning: %s", text)
        notes.append(text)
    return notes


def free_bytes(path: Path) -> int | None:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


# --- the dry run ---------------------------------------------------------------------------


def describe(prepared: Prepared, notes: Sequence[str] = ()) -> str:
    """What a build would do: inputs, plan and the exact commands, as text."""
    p = prepared
    make = brmake.Make(p.tree_shown, p.output)
    lines = [
        f"fwgen build {p.board.name}, kernel {p.variant_name} (linux {p.variant.version}): "
        "dry run, nothing is changed",
        f"  output directory: {p.output}",
        f"  Buildroot {p.board.buildroot.version}: {p.tree_shown}"
        + ("" if p.tree else " (extracted on the first real run)"),
    ]
    for file, status in p.downloads.items():
        lines.append(f"  {file}: {status}")
    lines.append(f"  kernel tarball for Buildroot: {p.locations.dl_dir / 'linux' / p.variant.file}")
    lines.append(
        f"  Buildroot's global patch dir: {p.locations.patch_dir} (the series of "
        f"{p.variant.patches} and the pin sha256 {p.variant.sha256}, from {p.board.source.name})"
    )
    reconfigure = _dry_run_kernel_config(p)
    lines.append(f"  Buildroot defconfig: {p.layout.defconfig}")
    lines.extend(f"  note: {note}" for note in notes)
    lines.append("plan:")
    lines.extend(f"  {line}" for line in p.plan.describe())
    lines.extend(f"  {line}" for line in reconfigure)
    lines.append("commands:")
    lines.extend(f"  {cmd}" for cmd in commands(prepared, make))
    lines.append("defconfig:")
    lines.extend(f"  {line}" if line else "" for line in p.defconfig_text.splitlines())
    return "\n".join(lines) + "\n"


def _dry_run_kernel_config(p: Prepared) -> list[str]:
    """What the kconfig stage would decide, if Buildroot's toolchain and the source are here."""
    where = f"kernel .config {p.locations.kernel_config}"
    if p.plan.full_clean or toolchain.buildroot_toolchain(p.output) is None:
        return [f"{where}: made by the kconfig stage once Buildroot has built its toolchain"]
    if p.kernel_tree is None:
        return [f"{where}: made by the kconfig stage once the kernel source is extracted"]
    digest = _sha256_text(kernel_config_text(p.variant, p.kernel_tree, p.output))
    step = rebuild.reconfigure_kernel(
        p.old_state, digest, p.plan, kernel_configured=_kernel_configured(p)
    )
    shown = [f"{where} (sha256 {digest[:12]}): {'; '.join(step.reasons)}"]
    if step.invalidate:
        shown.append(f"=> then make {' '.join(step.invalidate)}")
    return shown


def _kernel_configured(p: Prepared) -> bool:
    return (p.kernel_build_dir / ".stamp_configured").exists()


def commands(prepared: Prepared, make: brmake.Make) -> list[str]:
    p = prepared
    out = [
        shlex.join(
            make.command(
                "defconfig",
                args=[
                    f"BR2_EXTERNAL={paths.br2_external_dir()}",
                    f"BR2_DEFCONFIG={p.layout.defconfig}",
                ],
            )
        ),
        f"(check: every line of {p.layout.defconfig.name} is in {p.layout.dot_config})",
    ]
    if p.plan.full_clean and _has_build(p.output):
        out.append(shlex.join(make.command("clean")))
    if p.plan.update_kernel_series:
        out.append(
            f"(new series into {p.kernel_build_dir}: only the files either series touches, "
            f"from {p.layout.series_dir(p.variant.version)} to {p.variant.patches})"
        )
    if not p.plan.full_clean and p.plan.invalidate:
        out.append(shlex.join(make.command(*p.plan.invalidate)))
    for path in p.plan.remove_from_target:
        out.append(shlex.join(["rm", "-f", str(p.layout.target / path)]))
    out.append(
        shlex.join(make.command("show-info"))
        + "  (the package list for progress; the recorded one if the packages are the same)"
    )
    if toolchain_built(p):
        out.append("(no make toolchain: the last complete build here built it)")
    else:
        out.append(shlex.join(make.command("toolchain")))
    out.append(
        f"(kconfig stage with {p.layout.host / 'bin'}'s compiler -> {p.locations.kernel_config})"
    )
    out.append(shlex.join(make.command()))
    out.append(f"(check: {p.kernel_build_dir / '.config'} has {', '.join(p.variant.requirements)})")
    out.append(f"(collect: {p.layout.images} + manifest.json + SHA256SUMS)")
    return out


# --- the build ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    images: Path
    manifest: dict[str, Any]
    log: Path


def build(options: BuildOptions) -> BuildResult | None:
    """The whole build (None for a dry run, which prints its description instead)."""
    board = load_board(options.board)
    variant_name = options.kernel or board.default_kernel
    board.kernel(variant_name)
    notes = check_host(output_dir(options, board, variant_name), dry_run=options.dry_run)
    prepared = prepare(options)
    if options.dry_run:
        print(describe(prepared, notes), end="")
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
    place_kernel_tarball(p.kernel_tarball, p.locations.dl_dir)
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
        _write_state(state_path, rebuild.State(p.inputs, complete=False))
        info = package_info(make, p, steps_log)
        if is_offline(options):
            check_offline_sources(info, p.locations.dl_dir, primary_site(options.mirrors))
        if options.prefetch > 0:
            prefetch.prefetch(info, p.tree, p.locations.dl_dir, jobs=options.prefetch)
        _rotate(build_log)
        log.info("Buildroot build log: %s", build_log)
        progress = brmake.Progress.from_show_info(info, p.output)
        if toolchain_built(p):
            log.info("toolchain: built by the last complete build here (no make toolchain)")
        else:
            make.build(build_log, progress, targets=["toolchain"])
        inputs = configure_kernel(make, p, steps_log)
        _write_state(state_path, rebuild.State(inputs, complete=False))
        make.build(build_log, progress)
    except KeyboardInterrupt:
        log.error("fwgen: %s", brmake.interrupted_message(p.output, options.command))
        raise
    _report_ccache(stats_log, options.ccache_remote, build_log)
    final_config = p.kernel_build_dir / ".config"
    kconfig.verify_config(final_config, p.variant.requirements)
    manifest = collect_images(dataclasses.replace(p, inputs=inputs), build_log)
    _write_state(state_path, rebuild.State(inputs, complete=True))
    log.info("images: %s (%s)", p.layout.images, brmake.elapsed(start))
    return BuildResult(p.layout.images, manifest, build_log)


def toolchain_built(p: Prepared) -> bool:
    """Whether Buildroot's toolchain is complete, so the kconfig stage can use its compiler
    without `make toolchain` (a Buildroot make costs seconds in parsing alone): the last build
    here finished and the plan keeps the toolchain (a full clean is the only step that
    rebuilds it)."""
    return (
        p.old_state is not None
        and p.old_state.complete
        and not p.plan.full_clean
        and toolchain.buildroot_toolchain(p.output) is not None
    )


def package_info(make: brmake.Make, p: Prepared, steps_log: Path) -> dict[str, Any]:
    """`make show-info` (the packages, for progress and the source checks), or its recorded
    answer when nothing it is made from changed: Buildroot's .config, the Buildroot tree and
    br2-external's packages. It parses every package of Buildroot: seconds."""
    key = hashlib.sha256(
        "\n".join(
            [
                fsutil.sha256_file(p.layout.dot_config),
                str(p.tree),
                tree_version(p.tree) if p.tree else "",
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
    digest = _sha256_text(kernel_config_text(p.variant, p.kernel_tree, p.output))
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
        before_change=lambda: _write_state(state_path, rebuild.State(marked, complete=False)),
    )
    log.info("  files that differ from the last build's tree: %s", " ".join(rewritten) or "none")


def configure_kernel(make: brmake.Make, p: Prepared, steps_log: Path) -> rebuild.Inputs:
    """The kconfig stage with Buildroot's toolchain, and what its result asks of the build."""
    assert p.kernel_tree is not None
    text = kernel_config_text(p.variant, p.kernel_tree, p.output)
    if defconfig.write_if_changed(p.locations.kernel_config, text):
        log.info("kernel .config written: %s", p.locations.kernel_config)
    digest = _sha256_text(text)
    step = rebuild.reconfigure_kernel(
        p.old_state, digest, p.plan, kernel_configured=_kernel_configured(p)
    )
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
        if _has_build(p.output):
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


def _write_state(path: Path, state: rebuild.State) -> None:
    fsutil.write_atomic(path, json.dumps(state.to_json(), indent=2) + "\n", mode=0o644)


# --- images ----------------------------------------------------------------------------------


def expected_images(board: Board, variant: KernelVariant) -> list[str]:
    names = [board.buildroot.kernel_image, f"{Path(variant.device_tree).name}.dtb", "rootfs.ext2"]
    if board.buildroot.genimage_config:
        names += ["sdcard.img", "sdcard.img.bmap"]
    if board.buildroot.post_image_script:
        names.append("start-qemu.sh")
    return names


def collect_images(p: Prepared, build_log: Path) -> dict[str, Any]:
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
    manifest = build_manifest(p)
    images.finalize(out, manifest)
    return manifest


def build_manifest(p: Prepared) -> dict[str, Any]:
    release_file = p.kernel_build_dir / "include" / "config" / "kernel.release"
    release = release_file.read_text().strip() if release_file.is_file() else ""
    return {
        "board": p.board.name,
        "build": "buildroot",
        "kernel": {
            "variant": p.variant_name,
            "version": p.variant.version,
            "release": release,
            "source": {"file": p.variant.file, "sha256": p.variant.sha256},
            "series": p.inputs.series,
            "config_sha256": p.inputs.kernel_config,
            "device_tree": p.variant.device_tree,
        },
        "buildroot": {
            "version": p.board.buildroot.version,
            "file": p.board.buildroot.file,
            "sha256": p.board.buildroot.sha256,
            "tree_version": tree_version(p.tree) if p.tree else "",
            "defconfig_sha256": fsutil.sha256_file(p.layout.defconfig),
        },
        "toolchain": _toolchain(p.output),
        "modules": _modules(p.output, release),
        "overlays": {
            o: fingerprint.tree_content(d)
            for o, d in zip(p.board.overlays, p.board.overlay_dirs(), strict=True)
        },
        "fwgen_version": __version__,
    }


def _modules(output: Path, release: str) -> list[dict[str, str]]:
    """The out-of-tree modules in the target (sha256 "" when one is missing)."""
    found = []
    for package in modules.PACKAGES:
        for name in modules.module_names(package):
            ko = sorted(
                (layout.BuildrootBuild(output).target / "lib" / "modules").glob(
                    f"{release or '*'}/**/{name}.ko"
                )
            )
            found.append(
                {
                    "name": name,
                    "package": package,
                    "source": fingerprint.tree_content(modules.source_dir(package)),
                    "sha256": fsutil.sha256_file(ko[0]) if ko else "",
                }
            )
    return found


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
