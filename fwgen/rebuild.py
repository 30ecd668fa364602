"""Incremental Buildroot rebuilds: what went into a build directory, and what to redo.

Buildroot rebuilds nothing by itself when an input changes: its per-package stamps only say
which steps ran. fwgen records the inputs of every build it starts (`Inputs`, in
`<O>/fwgen/state.json`) and, on the next run, `plan()` compares them with the new inputs and
chooses the smallest set of Buildroot targets that makes the next plain `make` correct:

- Buildroot version, the kernel tarball (its headers build the toolchain), the toolchain or
  architecture options, a package removed or a package option changed: a full clean
  (Buildroot's manual: these need a complete rebuild);
- the kernel patch series: the kernel's build directory is brought to the new series in place
  (fwgen.kerneltree.update rewrites only the files either series touches), then
  `linux-clean-for-rebuild`, so Kbuild recompiles only what depends on those files; this needs
  the old series' patches (fwgen's global patch dir, when it still holds what the build
  directory was patched with). Without them, `linux-dirclean` (the patches are applied on
  extraction);
- a kernel option of the Buildroot configuration: `linux-dirclean`;
- only the kernel .config: `linux-clean-for-reconfigure` (Buildroot copies the file again,
  runs olddefconfig, and the kernel build is incremental). The kconfig stage runs with the
  toolchain Buildroot builds, so this part is decided later, by `reconfigure_kernel()`;
- a module package or its source: `<package>-dirclean` of every module package the recipe
  names (`module_packages`; also after any kernel change: Buildroot does not rebuild a module
  when its kernel is rebuilt);
- overlays, the post-image script, genimage configuration, rootfs and system options, a newly
  enabled package: a plain `make` (target-finalize, the rootfs images and post-image run on
  every `make`); a file removed from an overlay is also removed from <O>/target, where it
  would otherwise stay;
- download settings, paths and the job count: nothing.

`plan()` and `reconfigure_kernel()` are pure functions of their arguments; `fwgen.buildroot`
runs what they decide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fwgen import buildstate

# Symbols whose value does not change what is built.
_NO_REBUILD = {
    "BR2_DL_DIR": "the download directory",
    "BR2_PRIMARY_SITE": "the download mirror",
    "BR2_PRIMARY_SITE_ONLY": "the download mirror",
    "BR2_BACKUP_SITE": "the download mirror",
    "BR2_DOWNLOAD_FORCE_CHECK_HASHES": "download hash checks",
    "BR2_JLEVEL": "the job count",
    "BR2_CCACHE_DIR": "the ccache directory",
    # Contents are fingerprinted separately; the paths alone change nothing.
    "BR2_GLOBAL_PATCH_DIR": "the patch directory path (its series is compared by content)",
    "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE": "the kernel config path (compared by content)",
    "BR2_LINUX_KERNEL_LICENSE_FILES": "license files (legal-info only)",
}

# Symbols (by prefix) that a plain `make` applies: target-finalize, rootfs and post-image
# steps run on every build.
_FINALIZE_PREFIXES = (
    "BR2_ROOTFS_OVERLAY",
    "BR2_ROOTFS_POST_",
    "BR2_TARGET_ROOTFS_",
    "BR2_TARGET_GENERIC_",
)

# Kernel options of the Buildroot configuration: the kernel is rebuilt from scratch.
_KERNEL_PREFIX = "BR2_LINUX_KERNEL_"


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of everything a Buildroot build of one board and kernel variant uses."""

    buildroot: str  # "<version> <tarball sha256>"
    kernel: str  # "<version> <tarball sha256>"
    defconfig: dict[str, str]  # symbol -> value of the rendered defconfig
    # sha256 of the kconfig stage's .config (made after `make toolchain`); None: not yet made
    kernel_config: str | None
    # patch file name -> sha256, in series order; None: the kernel's build directory was
    # being brought to another series (an interrupted run leaves it neither)
    series: dict[str, str] | None
    module: str  # content hash of the module packages (.mk, Config.in, src/)
    overlays: dict[str, str]  # path in the rootfs -> "<mode> <sha256>" (merged overlays)
    board_files: str  # content hash of the post-image script and genimage configuration

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.series is not None:
            data["series"] = [[name, digest] for name, digest in self.series.items()]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inputs:
        values = dict(data)
        if values["series"] is not None:
            values["series"] = {name: digest for name, digest in values["series"]}
        return cls(**values)


def load_state(path: Path) -> buildstate.State[Inputs] | None:
    """What `<O>/fwgen/state.json` records, or None when there is none or it is unreadable."""
    return buildstate.load(path, Inputs.from_json)


@dataclass(frozen=True)
class Plan:
    """What to do before the plain `make`, and why."""

    full_clean: bool = False
    invalidate: tuple[str, ...] = ()  # Buildroot targets run before `make`
    remove_from_target: tuple[str, ...] = ()  # overlay files to delete from <O>/target
    reasons: tuple[str, ...] = ()
    fresh: bool = False  # nothing was built here before
    resume: bool = False  # the last build here did not finish
    unchanged: bool = False  # a complete build of exactly these inputs is here
    # bring the kernel's build directory to the new series in place (before `invalidate`)
    update_kernel_series: bool = False

    def describe(self) -> list[str]:
        lines = list(self.reasons)
        if self.full_clean:
            lines.append("=> full rebuild: make clean, then make")
        elif self.invalidate or self.remove_from_target:
            steps = ["new series into the kernel tree"] if self.update_kernel_series else []
            steps += self.invalidate
            if self.remove_from_target:
                steps.append(f"remove {len(self.remove_from_target)} file(s) from target/")
            lines.append(f"=> {', '.join(steps)}, then make")
        elif self.unchanged:
            lines.append(
                "=> nothing, if the kernel .config and images/ are as recorded (else make)"
            )
        else:
            lines.append("=> make (Buildroot's stamps skip every finished step)")
        return lines


@dataclass
class _Decision:
    module_packages: Sequence[str]  # all of them are redone together (one content digest)
    full: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    no_effect: list[str] = field(default_factory=list)  # changes to nothing that is built
    update_kernel_series: bool = False

    def target(self, *names: str) -> None:
        for name in names:
            if name not in self.targets:
                self.targets.append(name)

    @property
    def modules_dirclean(self) -> tuple[str, ...]:
        return _dirclean(self.module_packages)


def _dirclean(packages: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{p}-dirclean" for p in packages)


def plan(
    old: buildstate.State[Inputs] | None,
    new: Inputs,
    *,
    module_packages: Sequence[str],
    clean: bool = False,
    output_exists: bool = False,
    package_files: Mapping[str, str] | None = None,
    patched_series: Mapping[str, str] | None = None,
) -> Plan:
    """The smallest correct preparation for building `new` where `old` was built.

    `module_packages`: the recipe's kernel-module packages. `output_exists`: the output
    directory already holds Buildroot build results (without a state, fwgen cannot know what
    they were built from). `package_files`: path in the rootfs -> the package that installed
    it (Buildroot's packages-file-list.txt), for files removed from an overlay.
    `patched_series`: the series (name -> sha256, in order) whose patches are
    at hand and that the kernel's build directory was patched with, if it was.
    """
    if clean:
        return Plan(full_clean=True, reasons=("--clean: rebuilding everything",))
    if old is None:
        if output_exists:
            return Plan(
                full_clean=True,
                reasons=(
                    "the output directory holds a build fwgen has no record of "
                    "(no or unreadable fwgen/state.json): rebuilding everything",
                ),
            )
        return Plan(fresh=True, reasons=("first build in this output directory",))
    decision = _Decision(module_packages)
    _compare_versions(old.inputs, new, decision)
    _compare_defconfig(old.inputs.defconfig, new.defconfig, decision)
    _compare_kernel(old.inputs, new, decision, patched_series)
    _compare_module(old.inputs, new, decision)
    _compare_rootfs(old.inputs, new, decision, package_files or {})
    resume = not old.complete
    reasons = ["the previous build here did not finish: resuming it"] if resume else []
    if decision.full:
        return Plan(full_clean=True, reasons=tuple(reasons + decision.full), resume=resume)
    unchanged = not reasons and not decision.notes and not decision.targets and not decision.remove
    reasons += decision.notes + decision.no_effect
    if unchanged:
        # A new mirror or job count alone does not make a complete build out of date; the
        # next build that has something to do passes them on to Buildroot.
        reasons.append(
            "no input changed since the last build"
            + (" but the settings above, which change nothing that is built" if reasons else "")
        )
    return Plan(
        invalidate=_ordered(decision.targets),
        remove_from_target=tuple(decision.remove),
        reasons=tuple(reasons),
        resume=resume,
        unchanged=unchanged,
        update_kernel_series=decision.update_kernel_series,
    )


_CLEAN_STEPS = re.compile(r"^(.+)-(clean-for-reconfigure|clean-for-rebuild|clean-for-reinstall)$")


def _ordered(targets: Sequence[str]) -> tuple[str, ...]:
    """Drop steps a dirclean of the same package covers."""
    kept = []
    for name in targets:
        match = _CLEAN_STEPS.match(name)
        if match and f"{match.group(1)}-dirclean" in targets:
            continue
        kept.append(name)
    return tuple(kept)


def _compare_versions(old: Inputs, new: Inputs, d: _Decision) -> None:
    if old.buildroot != new.buildroot:
        d.full.append(f"Buildroot changed ({_short(old.buildroot)} -> {_short(new.buildroot)})")
    if old.kernel != new.kernel:
        d.full.append(
            f"the kernel tarball changed ({_short(old.kernel)} -> {_short(new.kernel)}); its "
            "headers are the toolchain's (BR2_KERNEL_HEADERS_AS_KERNEL)"
        )


def _short(fingerprint: str) -> str:
    version, _, digest = fingerprint.partition(" ")
    return f"{version} {digest[:12]}".strip()


def classify(symbol: str, old: str | None, new: str | None) -> str:
    """How a change of one Buildroot symbol affects the build.

    "none", "make" (a plain make applies it), "kernel" (the kernel is rebuilt) or "full".
    """
    if symbol in _NO_REBUILD:
        return "none"
    if symbol.startswith(_FINALIZE_PREFIXES):
        return "make"
    if symbol == "BR2_LINUX_KERNEL" or symbol.startswith("BR2_LINUX_KERNEL_CUSTOM_VERSION"):
        return "full"  # the kernel itself comes or goes, or its version (the headers) changes
    if symbol.startswith(_KERNEL_PREFIX):
        return "kernel"
    if symbol.startswith("BR2_PACKAGE_HOST_LINUX_HEADERS_"):
        return "full"
    if re.match(r"^BR2_PACKAGE_[A-Z0-9_]+$", symbol) and old is None and new == "y":
        return "make"  # a newly enabled package: make builds it
    return "full"


def _compare_defconfig(old: Mapping[str, str], new: Mapping[str, str], d: _Decision) -> None:
    for symbol in sorted(set(old) | set(new)):
        before, after = old.get(symbol), new.get(symbol)
        if before == after:
            continue
        change = f"{symbol}: {before or '(unset)'} -> {after or '(unset)'}"
        kind = classify(symbol, before, after)
        if kind == "full":
            d.full.append(
                f"{change}: toolchain, architecture or package selection (Buildroot needs a "
                "full rebuild for these)"
            )
        elif kind == "kernel":
            d.notes.append(f"{change}: the kernel is rebuilt from scratch")
            d.target("linux-dirclean", *d.modules_dirclean)
        elif kind == "make":
            d.notes.append(f"{change}: applied by make")
        else:
            d.no_effect.append(f"{change}: changes nothing that is built")


def _compare_kernel(
    old: Inputs, new: Inputs, d: _Decision, patched: Mapping[str, str] | None
) -> None:
    assert new.series is not None
    if old.series is None:
        d.notes.append("the kernel tree was left between two series by an interrupted run")
        d.target("linux-dirclean", *d.modules_dirclean)
        return
    if list(old.series.items()) == list(new.series.items()):  # the order matters too
        return
    change = f"kernel patch series changed ({_series_change(old.series, new.series)})"
    # (A kernel option that changed too dircleans the tree: nothing to bring in place.)
    in_place = patched is not None and "linux-dirclean" not in d.targets
    if in_place and list(patched.items()) == list(old.series.items()):
        d.notes.append(
            f"{change}: the kernel's build directory is brought to the new series in place "
            "(only the files either series touches) and rebuilt"
        )
        d.update_kernel_series = True
        d.target("linux-clean-for-rebuild", *d.modules_dirclean)
    else:
        d.notes.append(change)
        d.target("linux-dirclean", *d.modules_dirclean)


def reconfigure_kernel(
    old: buildstate.State[Inputs] | None,
    new_config: str,
    plan: Plan,
    *,
    kernel_configured: bool,
    module_packages: Sequence[str],
) -> Plan:
    """The kernel .config part of the plan, decided once the kconfig stage has run.

    The kconfig stage runs with the toolchain Buildroot builds, so its result is known only
    after `make toolchain`, when `plan()` has already been carried out. `new_config` is the
    sha256 of the new .config; `kernel_configured`: Buildroot has configured the kernel in
    this output directory (its linux .stamp_configured exists).
    """
    covered = plan.full_clean or plan.fresh or "linux-dirclean" in plan.invalidate
    if covered or not kernel_configured:
        return Plan(reasons=("kernel .config: Buildroot configures the kernel with it",))
    if old is not None and old.inputs.kernel_config == new_config:
        return Plan(reasons=("kernel .config unchanged",))
    return Plan(
        invalidate=("linux-clean-for-reconfigure", *_dirclean(module_packages)),
        reasons=("kernel .config changed: Buildroot reconfigures and rebuilds the kernel",),
    )


def _series_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    parts = []
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and old[n] != new[n]]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if changed:
        parts.append("changed " + ", ".join(changed))
    if not parts:
        parts.append("reordered")
    return "; ".join(parts)


def _compare_module(old: Inputs, new: Inputs, d: _Decision) -> None:
    if old.module != new.module:
        d.notes.append(f"module package or source changed ({', '.join(d.module_packages)})")
        d.target(*d.modules_dirclean)


def _compare_rootfs(
    old: Inputs, new: Inputs, d: _Decision, package_files: Mapping[str, str]
) -> None:
    if old.overlays != new.overlays:
        removed = sorted(set(old.overlays) - set(new.overlays))
        changed = sorted(p for p in new.overlays if old.overlays.get(p) != new.overlays[p])
        text = ", ".join(
            filter(None, [_count(changed, "added or changed"), _count(removed, "removed")])
        )
        d.notes.append(f"rootfs overlay: {text}: applied by make (target-finalize)")
        for path in removed:
            owner = package_files.get(path)
            if owner:
                d.notes.append(f"  {path} was also installed by {owner}: reinstalling {owner}")
                d.target(f"{owner}-clean-for-reinstall")
            else:
                d.remove.append(path)
    if old.board_files != new.board_files:
        d.notes.append("post-image script or genimage configuration changed: applied by make")


def _count(items: Sequence[str], what: str) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
    return f"{len(items)} {what} ({shown})"
