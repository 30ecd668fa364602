"""The whole configuration: defconfig + fragment + requirements, resolved, checked, written."""

from __future__ import annotations

import difflib
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import kconfiglib

from fwgen import fsutil, paths
from fwgen.errors import FwgenError
from fwgen.kconfig.explanation import explain, why_not
from fwgen.kconfig.resolver import Resolver
from fwgen.kconfig.symbols import has_value
from fwgen.kconfig.tree import DEFAULT_CROSS_COMPILE, drain_warnings, kernel_version, load_tree
from fwgen.kconfig.values import Assignment, parse_requirement, read_fragment, verify_config

if TYPE_CHECKING:
    from fwgen.board import KernelVariant

log = logging.getLogger("fwgen.kconfig")


@dataclass
class KernelConfig:
    """A resolved kernel configuration, ready to write."""

    kconf: kconfiglib.Kconfig
    srctree: Path
    version: str
    sources: str
    requirements: list[Assignment]
    changes: list[str]
    origins: dict[str, str]

    def header(self) -> str:
        return (
            "#\n# Automatically generated file; DO NOT EDIT.\n"
            f"# Linux/arm {self.version} Kernel Configuration\n"
            f"# fwgen: {self.sources}\n"
            f"# requirements: {' '.join(r.text for r in self.requirements) or 'none'}\n#\n"
        )

    def text(self) -> str:
        """The full .config, as `write` would write it."""
        with tempfile.TemporaryDirectory(prefix="fwgen-config-") as scratch:
            path = Path(scratch) / ".config"
            self.write(path)
            return path.read_text(encoding="utf-8")

    def write(self, path: Path) -> None:
        """Write the full .config atomically, re-checked as the build stages will check it."""

        def write_checked(tmp: str) -> None:
            self.kconf.write_config(tmp, self.header(), False)
            verify_config(Path(tmp), [r.text for r in self.requirements])

        _atomic_write(path, write_checked)
        drain_warnings(self.kconf)

    def write_defconfig(self, path: Path) -> None:
        """Write a minimal defconfig (`make savedefconfig` format) atomically."""
        _atomic_write(path, lambda tmp: self.kconf.write_min_config(tmp, self.header()))
        drain_warnings(self.kconf)

    def explain(self, name: str) -> str:
        return explain(self.kconf, name, self.origins)


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    try:
        # `tmp` exists, empty (mode 0666 minus umask): kconfiglib skips writing identical files.
        with fsutil.replacing(path) as tmp:
            write(str(tmp))
    except OSError as e:
        raise FwgenError(f"cannot write {path}: {e.strerror}") from e


def defconfig_path(srctree: Path, defconfig: str | Path, arch: str = "arm") -> Path:
    """arch/<arch>/configs/<name> of the tree, or the given path if it names a file."""
    if isinstance(defconfig, Path) or "/" in defconfig:
        path = Path(defconfig)
    else:
        path = srctree / "arch" / arch / "configs" / defconfig
    if not path.is_file():
        configs = srctree / "arch" / arch / "configs"
        names = [p.name for p in configs.glob("*_defconfig")] if configs.is_dir() else []
        close = difflib.get_close_matches(Path(defconfig).name, names, n=3)
        raise FwgenError(
            f"no defconfig {path}",
            f"did you mean {', '.join(close)}?" if close else "check the board recipe",
        )
    return path


def _record_origins(origins: dict[str, str], assignments: Sequence[Assignment]) -> None:
    for a in assignments:
        origins[a.name] = f"{a.where} ('{a.text}')"


def _load_assignments(kconf: kconfiglib.Kconfig, path: Path, label: str, replace: bool) -> None:
    kconf.load_config(str(path), replace=replace)
    for name in kconf.missing_syms:
        log.debug("%s assigns %s, which this kernel does not define", label, name[0])
    drain_warnings(kconf)


def _check_earlier(
    kconf: kconfiglib.Kconfig, earlier: Sequence[Assignment], latest: Assignment
) -> None:
    for req in earlier:
        sym = kconf.syms[req.name]
        if not has_value(sym, req.value):
            raise FwgenError(
                f"the requirements conflict: meeting {latest.text} undoes {req.text} "
                f"({why_not(sym, req.value)})",
                "drop or change one of the two requirements",
            )


def _check_results(
    kconf: kconfiglib.Kconfig, requirements: Sequence[Assignment], fragment: Sequence[Assignment]
) -> None:
    """Refuse a config that lost a requirement or a fragment line (cf. is_defconfig_valid)."""
    lost = [r for r in requirements if not has_value(kconf.syms[r.name], r.value)]
    if lost:
        raise FwgenError(
            "the requirements conflict: once all were applied, these no longer hold:\n"
            + "\n".join(f"  {r.text}: {why_not(kconf.syms[r.name], r.value)}" for r in lost),
            "drop or change one of the conflicting requirements",
        )
    dropped = []
    for a in fragment:
        sym = kconf.syms.get(a.name)
        if sym is None or not sym.nodes:
            dropped.append(f"  {a.where}: '{a.text}': this kernel has no symbol {a.name}")
        elif not has_value(sym, a.value):
            actual = sym.str_value or "empty"
            dropped.append(f"  {a.where}: '{a.text}' gives {actual}: {why_not(sym, a.value)}")
    if dropped:
        raise FwgenError(
            "fragment lines that do not survive in the final config:\n" + "\n".join(dropped),
            "make their dependencies hold in the fragment too, or remove the lines",
        )


def configure(
    srctree: Path,
    *,
    defconfig: str | Path,
    requirements: Sequence[str] = (),
    fragment: Path | None = None,
    fragment_label: str | None = None,
    cross_compile: str = DEFAULT_CROSS_COMPILE,
    arch: str = "arm",
    tree: kconfiglib.Kconfig | None = None,
) -> KernelConfig:
    """defconfig + fragment + requirements, resolved and verified (FwgenError otherwise).

    `tree` reuses a `load_tree()` result of the same srctree (loading the defconfig resets
    every value); the returned KernelConfig then shares it.
    """
    reqs = [parse_requirement(text) for text in requirements]
    srctree = Path(srctree).resolve()
    kconf = tree or load_tree(srctree, cross_compile=cross_compile, arch=arch)
    base = defconfig_path(srctree, defconfig, arch)
    base_label = str(base.relative_to(srctree)) if base.is_relative_to(srctree) else str(base)
    origins: dict[str, str] = {}
    _load_assignments(kconf, base, base_label, replace=True)
    _record_origins(origins, read_fragment(base, base_label))
    lines: list[Assignment] = []
    if fragment is not None:
        label = fragment_label or str(fragment)
        lines = read_fragment(fragment, label)
        _load_assignments(kconf, fragment, label, replace=False)
        _record_origins(origins, lines)
    pinned = {a.name: a for a in lines}
    resolver = Resolver(kconf, pinned)
    for number, req in enumerate(reqs):
        resolver.require(req)
        pinned[req.name] = req  # a later requirement must not change this symbol
        _check_earlier(kconf, reqs[:number], req)
    for change in resolver.actions:
        log.info("kconfig: set %s to meet the requirements", change)
        origins[change.split("=", 1)[0]] = "fwgen's requirement resolver"
    _check_results(kconf, reqs, lines)
    drain_warnings(kconf)
    sources = " + ".join([base_label, *([fragment_label or str(fragment)] if fragment else [])])
    return KernelConfig(
        kconf, srctree, kernel_version(srctree), sources, reqs, resolver.actions, origins
    )


def configure_variant(
    variant: KernelVariant, srctree: Path, *, cross_compile: str = DEFAULT_CROSS_COMPILE
) -> KernelConfig:
    """The configuration a board's kernel variant asks for, from an extracted source tree."""
    return configure(
        srctree,
        defconfig=variant.defconfig,
        requirements=variant.requirements,
        fragment=variant.fragment_path(),
        fragment_label=paths.shown(variant.fragment_path()),
        cross_compile=cross_compile,
    )
