"""What a kernel-only build must redo, decided from the last run's recorded inputs.

`decide` returns one of four outcomes: a fresh tree (the source, the host fixups or the
toolchain changed, or the kept trees are gone), a new series (only the patch series changed),
an incremental build (naming the other inputs that changed), or up to date (every input the
same and images/ verifies against its manifest). The inputs are cheap fingerprints: the
source's identity recorded at extraction, small files and folders, fwgen's own code.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fwgen import (
    buildstate,
    fingerprint,
    fsutil,
    kconfig,
    kernelsrc,
    manifest,
    modules,
    sources,
)
from fwgen.board import Board, KernelVariant
from fwgen.log import log

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
            return manifest.tarball_source(self.identity["tarball"], self.identity["sha256"])
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

    def with_content(self, previous: buildstate.State[Inputs] | None) -> KernelSource:
        """A tree's identity with the sha256 over its files; reused from the last build when
        the tree's sizes and mtimes are unchanged (hashing a kernel tree takes seconds)."""
        if "tree" not in self.identity:
            return self
        before = previous.inputs.source if previous else {}
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


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of everything a kernel-only build of one board and variant uses."""

    source: dict[str, Any]  # KernelSource.identity
    series: tuple[tuple[str, str], ...]  # (patch file name, sha256), in series order
    fixups: int  # kerneltree.HOST_FIXUPS_VERSION
    toolchain: dict[str, str]  # prefix, version
    outputs: dict[str, Any]  # outputs_inputs(): everything else, by what it is
    # sha256 of the .config the build used, recorded once it completed (it may be edited by
    # hand afterwards: config_kept compares it)
    config: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["series"] = [list(pair) for pair in self.series]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inputs:
        values = dict(data)
        values["series"] = tuple((str(name), str(digest)) for name, digest in values["series"])
        return cls(**values)


def _recognised_by(source: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k != "content_sha256"}


def load_state(path: Path) -> buildstate.State[Inputs] | None:
    """What the kernel-only build's state.json records, or None (none, unreadable, or written
    by an fwgen before the record had a version: the next build starts afresh)."""
    return buildstate.load(path, Inputs.from_json)


def decide(
    previous: buildstate.State[Inputs] | None,
    current: Inputs,
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
    done = previous.inputs
    reasons = []
    # A tree is recognised by its sizes and mtimes ("stat"); the sha256 over its files is
    # derived from it (with_content) and only recorded for the manifest.
    if _recognised_by(done.source) != _recognised_by(current.source):
        reasons.append("the kernel source changed")
    if done.fixups != current.fixups:
        reasons.append("fwgen's host fixups changed")
    if done.toolchain != current.toolchain:
        reasons.append("the toolchain changed")
    if done.series != current.series:
        old, new = dict(done.series), dict(current.series)
        changed = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        reasons.append(f"the patch series changed ({', '.join(changed) or 'order'})")
        if len(reasons) == 1:
            # Same source, fixups and compiler: the objects stay valid for every file the
            # change leaves alone (kerneltree.update keeps their mtimes).
            return Decision(NEW_SERIES, (reasons[0] + ": only the files it changes are rewritten",))
    if reasons:
        return Decision(FRESH, tuple(reasons))
    same = "same source, series and toolchain"
    if not previous.complete:
        return Decision(INCREMENTAL, (f"{same}: incremental build (the last one did not finish)",))
    changed = sorted(
        k
        for k in done.outputs.keys() | current.outputs.keys()
        if done.outputs.get(k) != current.outputs.get(k)
    )
    if changed:
        return Decision(INCREMENTAL, (f"{same}: incremental build ({', '.join(changed)} changed)",))
    if not images_intact():
        return Decision(INCREMENTAL, (f"{same}: incremental build (images/ does not verify)",))
    return Decision(
        UP_TO_DATE,
        (
            "no input changed since the last build (source, series, toolchain, "
            + ", ".join(sorted(current.outputs))
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
    previous: buildstate.State[Inputs] | None,
    current: Inputs,
    rewritten: Sequence[str] | None,
    config_path: Path,
) -> str | None:
    """Why the last build's .config can be used as it is (None: make it again): the kconfig
    stage and olddefconfig take seconds and would give the same file when neither the
    configuration inputs nor any file they read changed. `rewritten`: the tree's files that
    changed since the last build (None: any may have)."""
    if previous is None or not previous.complete or rewritten is None:
        return None
    done = previous.inputs
    if done.config is None:
        return None
    if done.outputs.get("kernel configuration") != current.outputs["kernel configuration"]:
        return None
    if any(_shapes_config(rel) for rel in rewritten):
        return None
    if not config_path.is_file() or fsutil.sha256_file(config_path) != done.config:
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


def _rootfs_identity(rootfs: Path) -> dict[str, str]:
    if rootfs.is_dir():
        # The name, not the path: manifests travel (releases) and must not carry host paths.
        return {"dir": rootfs.resolve().name, "content": fingerprint.tree_content(rootfs)}
    return {"file": rootfs.name, "sha256": fsutil.sha256_file(rootfs)}
