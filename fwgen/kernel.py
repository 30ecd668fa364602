"""The kernel-only build: the board's kernel, patches, config and modules, without Buildroot.

A fast loop for kernel work: the same inputs a Buildroot build uses (verified source, the
board's patch series, Buildroot's host fixups for old kernels, the kconfig stage's .config,
the sources of br2-external's kernel-module packages), built with the kernel's own Kbuild,
and an initramfs made of the given rootfs plus the board's overlays and the modules. The
result is an images/ directory with the same names as a Buildroot build's, plus manifest.json
and SHA256SUMS.

Rebuild rules (explicit, see `decide`): the patched source tree and the object tree are kept
between runs. If the kernel source, the host fixups or the toolchain differ from the last run,
both are made afresh. If only the patch series differs, the kept tree is brought to the new
series in place (fwgen.kerneltree.update: only the files that differ are rewritten) and the
objects are kept, so Kbuild recompiles only what depends on those files. Otherwise Kbuild
rebuilds incrementally (a changed .config included: Kbuild tracks config dependencies
itself). The kconfig stage and olddefconfig are skipped when nothing they read changed
(`config_kept`). The modules, the modules staging tree, the initramfs and images/ are redone
on every run: they take seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fwgen import (
    ccache,
    fingerprint,
    fsutil,
    images,
    initramfs,
    kconfig,
    kernelsrc,
    kerneltree,
    layout,
    modules,
    patches,
    sources,
)
from fwgen.board import Board, KernelVariant
from fwgen.errors import FwgenError
from fwgen.log import log, progress_disabled
from fwgen.toolchain import Toolchain
from fwgen.toolchain import find as find_toolchain

FRESH = "fresh tree"
NEW_SERIES = "new series"
INCREMENTAL = "incremental"
UP_TO_DATE = "up to date"


@dataclass(frozen=True)
class Decision:
    action: str  # FRESH, NEW_SERIES, INCREMENTAL or UP_TO_DATE
    reasons: tuple[str, ...]

    @property
    def fresh(self) -> bool:
        return self.action == FRESH


@dataclass(frozen=True)
class KernelSource:
    tree: Path  # pristine, never modified
    identity: dict[str, str]  # how the source is recognised next time

    def public_identity(self) -> dict[str, Any]:
        """What the source was, for the manifest (no host paths): a tarball by its name and
        sha256; a tree by its folder's name, its kernel version, the sha256 over its files
        (paths, modes, contents; .git left out) and, in a git checkout, the commit."""
        if "tree" not in self.identity:
            return {"kind": "tarball", **self.identity}
        identity: dict[str, Any] = {
            "kind": "tree",
            "tree": Path(self.identity["tree"]).name,
            "version": kconfig.kernel_version(self.tree),
            "content_sha256": self.identity.get("content_sha256", ""),
        }
        git = _git_state(self.tree)
        if git:
            identity["git"] = git
        return identity

    def with_content(self, previous: Mapping[str, Any] | None) -> KernelSource:
        """A tree's identity with the sha256 over its files; reused from the last build when
        the tree's sizes and mtimes are unchanged (hashing a kernel tree takes seconds)."""
        if "tree" not in self.identity:
            return self
        before = (previous or {}).get("source") or {}
        if before.get("stat") == self.identity["stat"] and before.get("content_sha256"):
            digest = before["content_sha256"]
        else:
            log.debug(
                "hashing the kernel source tree %s (its identity for the manifest)", self.tree
            )
            digest = fingerprint.tree_content(self.tree, skip=(".git",))
        return KernelSource(self.tree, {**self.identity, "content_sha256": digest})


def _git_state(tree: Path) -> dict[str, Any] | None:
    """The commit of a git checkout, and whether tracked files differ from it."""
    if not (tree / ".git").exists() or shutil.which("git") is None:
        return None

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def clean(output: Path, board: Board, variant: str) -> None:
    """--clean: forget the kernel-only build of this board and variant."""
    work = layout.kernel_only(output, board.name, variant).work
    if work.exists():
        log.info("removing %s (--clean)", work)
        shutil.rmtree(work)


def _recognised_by(source: Any) -> Any:
    if isinstance(source, Mapping):
        return {k: v for k, v in source.items() if k != "content_sha256"}
    return source


def decide(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    images_intact: Callable[[], bool] = lambda: False,
    *,
    kept: bool = True,
) -> Decision:
    """Fresh tree, the kept tree brought to a new series, an incremental build, or nothing to
    do, and why: the rebuild rules in one place. `kept`: the tree and object directories of
    the last build are there. `images_intact` is asked only when every input is the same as
    at the last complete build."""
    if previous is None:
        return Decision(FRESH, ("no earlier kernel-only build here",))
    if not kept:
        return Decision(FRESH, ("the last build's tree or objects are gone",))
    reasons = []
    # A tree is recognised by its sizes and mtimes ("stat"); the sha256 over its files is
    # derived from it (with_content) and only recorded for the manifest.
    if _recognised_by(previous.get("source")) != _recognised_by(current["source"]):
        reasons.append("the kernel source changed")
    if previous.get("fixups") != current["fixups"]:
        reasons.append("fwgen's host fixups changed")
    if previous.get("toolchain") != current["toolchain"]:
        reasons.append("the toolchain changed")
    # The series is a list of [name, sha256] pairs: its order matters as much as its content.
    old_series, new_series = previous.get("series", []), current["series"]
    if old_series != new_series:
        old, new = dict(old_series), dict(new_series)
        changed = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        reasons.append(f"the patch series changed ({', '.join(changed) or 'order'})")
        if len(reasons) == 1:
            # Same source, fixups and compiler: the objects stay valid for every file the
            # change leaves alone (kerneltree.update keeps their mtimes).
            return Decision(NEW_SERIES, (reasons[0] + ": only the files it changes are rewritten",))
    if reasons:
        return Decision(FRESH, tuple(reasons))
    same = "same source, series and toolchain"
    done, now = previous.get("outputs") or {}, current.get("outputs") or {}
    changed = sorted(k for k in done.keys() | now.keys() if done.get(k) != now.get(k))
    if not done:
        return Decision(INCREMENTAL, (f"{same}: incremental build",))
    if changed:
        return Decision(INCREMENTAL, (f"{same}: incremental build ({', '.join(changed)} changed)",))
    if not images_intact():
        return Decision(INCREMENTAL, (f"{same}: incremental build (images/ does not verify)",))
    return Decision(
        UP_TO_DATE,
        (
            "no input changed since the last build (source, series, toolchain, "
            + ", ".join(sorted(now))
            + ") and images/ verifies against its manifest",
        ),
    )


def _shapes_config(rel: str) -> bool:
    """A file of the tree the kernel configuration is made from: Kconfig files, the kconfig
    tool, the defconfigs, the top Makefile (the kernel version)."""
    name = rel.rsplit("/", 1)[-1]
    return (
        name.startswith("Kconfig")
        or rel.startswith("scripts/kconfig/")
        or "/configs/" in rel
        or rel == "Makefile"
    )


def config_kept(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    rewritten: Sequence[str] | None,
    config_path: Path,
) -> str | None:
    """Why the last build's .config can be used as it is (None: make it again): the kconfig
    stage and olddefconfig take seconds and would give the same file when neither the
    configuration inputs nor any file they read changed. `rewritten`: the tree's files that
    changed since the last build (None: any may have)."""
    if previous is None or rewritten is None or not previous.get("config"):
        return None
    before = (previous.get("outputs") or {}).get("kernel configuration")
    if before != current["outputs"]["kernel configuration"]:
        return None
    if any(_shapes_config(rel) for rel in rewritten):
        return None
    if not config_path.is_file() or fsutil.sha256_file(config_path) != previous["config"]:
        return None
    if rewritten:
        return "the series changed no Kconfig file, defconfig or the kernel Makefile"
    return "its inputs are unchanged"


def outputs_inputs(
    board: Board, variant: KernelVariant, module_packages: Sequence[str], rootfs: Path
) -> dict[str, Any]:
    """Every input of the images besides the patched tree and the compiler, each cheap to
    fingerprint (small files and folders), so that a build with nothing changed can say so
    without Kconfig or make. fwgen's own code is one of them: a new fwgen may build
    differently."""
    return {
        "kernel configuration": {
            "arch": board.arch,
            "defconfig": variant.defconfig,
            "fragment": fsutil.sha256_file(variant.fragment_path()),
            "requirements": list(variant.requirements),
            "device tree": variant.device_tree,
        },
        "module packages": {
            p: fingerprint.tree_content(modules.source_dir(p)) for p in module_packages
        },
        "root filesystem": _rootfs_identity(rootfs),
        "overlays": {
            o: fingerprint.tree_content(d)
            for o, d in zip(board.overlays, board.overlay_dirs(), strict=True)
        },
        "fwgen": fingerprint.tree_content(Path(__file__).parent, skip=("__pycache__",)),
    }


def resolve_source(
    variant: KernelVariant, kernel_src: str | None, *, mirrors: Sequence[str], offline: bool
) -> KernelSource:
    """The pristine tree to build: the given tree/tarball, else the verified pinned tarball."""
    if kernel_src:
        given = Path(kernel_src)
        tree = kernelsrc.kernel_source(given)
        if given.is_dir():
            return KernelSource(
                tree, {"tree": str(given.resolve()), "stat": fingerprint.tree_stat(tree)}
            )
        return KernelSource(tree, {"tarball": given.name, "sha256": fsutil.sha256_file(given)})
    (tarball,) = sources.fetch([variant], mirrors=mirrors, offline=offline)
    return KernelSource(
        sources.extract(tarball, variant.sha256),
        {"tarball": variant.file, "sha256": variant.sha256},
    )


class KbuildRunner:
    """Runs Kbuild for one tree: one log file, a progress line, the tail on failure."""

    def __init__(
        self,
        src: Path,
        obj: Path,
        arch: str,
        toolchain: Toolchain,
        jobs: int,
        log_file: Path,
        ccache_env: Mapping[str, str] | None = None,
    ):
        self.src, self.obj, self.jobs, self.log_file = src, obj, jobs, log_file
        self.args = [f"ARCH={arch}", f"CROSS_COMPILE={toolchain.prefix}"]
        if shutil.which("ccache"):
            self.args.append(f"CC=ccache {toolchain.gcc}")
        self.env = {
            **os.environ,
            # Stable version strings: the same inputs give the same init/version.o (and
            # ccache hits, also on another host); a Buildroot build sets these too.
            "KBUILD_BUILD_USER": "fwgen",
            "KBUILD_BUILD_HOST": "fwgen",
            **(ccache_env or {}),
        }
        if "SOURCE_DATE_EPOCH" in os.environ:
            self.env.setdefault("KBUILD_BUILD_TIMESTAMP", "@" + os.environ["SOURCE_DATE_EPOCH"])

    def make(self, *targets: str, extra: Sequence[str] = (), what: str = "") -> None:
        cmd = [
            "make",
            "-C",
            str(self.src),
            f"O={self.obj.resolve()}",
            *self.args,
            f"-j{self.jobs}",
            *extra,
            *targets,
        ]
        log.debug("running: %s", " ".join(cmd))
        with self.log_file.open("a") as logf:
            logf.write(f"\n$ {' '.join(cmd)}\n")
            logf.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                text=True,
                errors="replace",
            )
            assert proc.stdout is not None
            bar = tqdm(
                desc=what or " ".join(targets),
                unit=" steps",
                file=sys.stderr,
                disable=progress_disabled(),
                leave=False,
            )
            try:
                for line in proc.stdout:
                    logf.write(line)
                    step = line.strip().split(None, 1)
                    if len(step) == 2 and step[0].isupper() and len(step[0]) <= 10:
                        bar.update(1)
                        bar.set_postfix_str(step[1][-48:], refresh=False)
                code = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                bar.close()
        if code != 0:
            tail = self.log_file.read_text(errors="replace").splitlines()[-25:]
            raise FwgenError(
                f"kernel build failed: make {' '.join(targets)} exited {code}\n"
                + "\n".join(f"    {t}" for t in tail)
                + f"\n  full log: {self.log_file}",
                "fix the error above; run the same command again to continue",
            )


def build_modules(runner: KbuildRunner, dest: Path, packages: Sequence[str]) -> dict[str, Path]:
    """Each module package's src/ (the source its Buildroot package uses), built in
    dest/<package>/ with Kbuild's M=. Returns module name -> .ko file."""
    if dest.exists():
        shutil.rmtree(dest)
    built = {}
    for package in packages:
        names = modules.module_names(package)
        shutil.copytree(modules.source_dir(package), dest / package)
        runner.make("modules", extra=[f"M={(dest / package).resolve()}"], what=package)
        built.update({name: dest / package / f"{name}.ko" for name in names})
    return built


def stage_modules(runner: KbuildRunner, module_dirs: Sequence[Path], staging: Path) -> Path:
    """lib/modules/<release>/ with the kernel's modules, the out-of-tree ones in extra/, and
    modules.dep (Kbuild runs depmod), as Buildroot installs them."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    install = [f"INSTALL_MOD_PATH={staging.resolve()}", "INSTALL_MOD_STRIP=1"]
    runner.make("modules_install", extra=install, what="modules_install")
    for module_dir in module_dirs:
        runner.make(
            "modules_install",
            extra=[*install, f"M={module_dir.resolve()}"],
            what=f"install {module_dir.name}",
        )
    for host_link in [*staging.glob("lib/modules/*/build"), *staging.glob("lib/modules/*/source")]:
        host_link.unlink()
    return staging


def kernel_release(obj: Path) -> str:
    return (obj / "include" / "config" / "kernel.release").read_text().strip()


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _rootfs_identity(rootfs: Path) -> dict[str, str]:
    if rootfs.is_dir():
        # The name, not the path: manifests travel (releases) and must not carry host paths.
        return {"dir": rootfs.resolve().name, "content": fingerprint.tree_content(rootfs)}
    return {"file": rootfs.name, "sha256": fsutil.sha256_file(rootfs)}


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
    module_packages: Sequence[str] = modules.PACKAGES,
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
    previous = _load_state(state_file)
    source = resolve_source(variant, kernel_src, mirrors=mirrors, offline=offline)
    source = source.with_content(previous)
    version = kconfig.kernel_version(source.tree)
    log.info("kernel source: linux %s (%s)", version, source.identity.get("tarball") or source.tree)
    series = patches.series(variant.patches_dir())
    current = {
        "source": source.identity,
        "series": [[p.name, fsutil.sha256_file(p)] for p in series],
        "fixups": kerneltree.HOST_FIXUPS_VERSION,
        "toolchain": {"prefix": toolchain.prefix, "version": toolchain.version},
        "outputs": outputs_inputs(board, variant, module_packages, rootfs),
    }
    decision = decide(
        previous,
        current,
        lambda: out.is_dir() and not images.verify(out),
        kept=src.is_dir() and obj.is_dir(),
    )
    log.info("%s: %s", decision.action, "; ".join(decision.reasons))
    if decision.action == UP_TO_DATE:
        with log_file.open("a") as logf:
            logf.write(f"fwgen: up to date: {decision.reasons[0]}\n")
        log.info("images: %s (nothing to do)", out)
        return out
    log_file.write_text("")
    tree_state = {k: v for k, v in current.items() if k != "outputs"}
    if decision.action != INCREMENTAL:
        # Not recorded until the tree is complete: an interrupted run starts afresh next time.
        state_file.unlink(missing_ok=True)
    elif previous and "outputs" in previous:
        # The images are about to be redone: until they are, nothing is up to date.
        fsutil.write_atomic(state_file, json.dumps(tree_state, indent=2, sort_keys=True) + "\n")
    if decision.action == FRESH:
        shutil.rmtree(obj, ignore_errors=True)
        kerneltree.prepare(source.tree, src, variant.patches_dir())
    rewritten: list[str] | None = None  # None: the whole tree may have changed
    if decision.action == NEW_SERIES:
        rewritten = kerneltree.update(source.tree, src, variant.patches_dir())
        log.info(
            "  files that differ from the last build's tree: %s", " ".join(rewritten) or "none"
        )
    elif decision.action == INCREMENTAL:
        rewritten = []
    if decision.action != INCREMENTAL:
        fsutil.write_atomic(state_file, json.dumps(tree_state, indent=2, sort_keys=True) + "\n")
    obj.mkdir(parents=True, exist_ok=True)

    config_path = build.kernel_config
    kept_config = config_kept(previous, current, rewritten, config_path)
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
    runner = KbuildRunner(
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
    release = kernel_release(obj)

    built = build_modules(runner, build.modules, module_packages)
    summary = ccache.read_stats(stats_log).summary(ccache_remote)
    log.info("%s", summary)
    with log_file.open("a") as logf:
        logf.write(f"fwgen: {summary}\n")
    staging = stage_modules(runner, [build.modules / p for p in module_packages], build.staging)
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
        {
            "board": board.name,
            "build": "kernel-only",
            "kernel": {
                "variant": name,
                "version": version,
                "release": release,
                "source": source.public_identity(),
                "series": dict(current["series"]),
                "config_sha256": fsutil.sha256_file(config_path),
                "device_tree": variant.device_tree,
            },
            "toolchain": {**current["toolchain"], "origin": toolchain.origin},
            "modules": [
                {
                    "name": name,
                    "package": ko.parent.name,
                    "source": current["outputs"]["module packages"][ko.parent.name],
                    "sha256": fsutil.sha256_file(ko),
                }
                for name, ko in built.items()
            ],
            "rootfs": current["outputs"]["root filesystem"],
            "overlays": current["outputs"]["overlays"],
        },
    )
    done = {**current, "config": fsutil.sha256_file(config_path)}
    fsutil.write_atomic(state_file, json.dumps(done, indent=2, sort_keys=True) + "\n")
    log.info("images: %s (kernel %s)", out, release)
    return out
