"""Everything decided before Buildroot runs: options, the recipe's choices, the rebuild plan,
the host checks.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fwgen import (
    brinputs,
    brtree,
    buildstate,
    ccache,
    defconfig,
    doctor,
    kconfig,
    layout,
    rebuild,
    sources,
    toolchain,
)
from fwgen.board import Board, Download, KernelVariant, load_board
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
    old_state: buildstate.State[rebuild.Inputs] | None
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
        return brtree.extracted_tree(variant)
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
        tree = brtree.buildroot_tree(
            board, fetched.get(board.buildroot.file), options.buildroot_src
        )
        return fetched, {}, tree
    # A dry run downloads and extracts nothing; it uses what is already there.
    if options.buildroot_src is not None:
        return (
            {},
            _download_status(downloads, is_offline(options)),
            brtree.buildroot_tree(board, None, options.buildroot_src),
        )
    tree = brtree.extracted_tree(board.buildroot)
    if tree is not None:
        brtree.check_tree_version(tree, board)
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
    inputs = brinputs.collect_inputs(board, variant, text, last_config)
    plan = rebuild.plan(
        old_state,
        inputs,
        clean=options.clean,
        module_packages=board.module_packages,
        output_exists=brinputs.has_build(output),
        package_files=brinputs.package_files(output),
        patched_series=brinputs.patched_series(output, variant),
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


def kernel_configured(p: Prepared) -> bool:
    return (p.kernel_build_dir / ".stamp_configured").exists()


def kernel_config_step(p: Prepared, text: str) -> tuple[str, rebuild.Plan]:
    """The sha256 of the kconfig stage's .config `text`, and what that .config asks of the
    build (`rebuild.reconfigure_kernel`): for the build and for the dry run alike."""
    digest = brinputs.sha256_text(text)
    step = rebuild.reconfigure_kernel(
        p.old_state,
        digest,
        p.plan,
        kernel_configured=kernel_configured(p),
        module_packages=p.board.module_packages,
    )
    return digest, step
