"""Board recipes: board/<name>/board.toml, validated on load.

The recipe decides everything a stage needs (versions, pins, kernel variants, QEMU, checks);
stages read it and never re-derive what it says.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from fwgen import paths
from fwgen.errors import FwgenError
from fwgen.recipe import RecipeError, build, field, load_toml, non_empty, sha256_hex

_REQUIREMENT_RE = re.compile(r"^[A-Za-z0-9_]+=(y|m|n|\".*\"|[^\s\"]+)$")
_FILE_RE = re.compile(r"^[A-Za-z0-9._+-]+$")


def _file_name(value: str) -> str | None:
    if not _FILE_RE.match(value) or value in (".", ".."):
        return "must be a plain file name (letters, digits, . _ + -), no directories"
    return None


def _urls(value: tuple[str, ...]) -> str | None:
    if not value:
        return "must list at least one URL"
    for url in value:
        if not re.match(r"^(https?|ftp)://\S+$", url):
            return f"{url!r} is not an http(s) or ftp URL"
    return None


def _requirements(value: tuple[str, ...]) -> str | None:
    for item in value:
        if not _REQUIREMENT_RE.match(item):
            return f"{item!r} is not SYMBOL=value (e.g. SYSCTL=y), without the CONFIG_ prefix"
        if item.startswith("CONFIG_"):
            return f"{item!r}: write symbols without the CONFIG_ prefix"
    return None


def _relative_path(value: str) -> str | None:
    if value.startswith("/") or ".." in Path(value).parts:
        return "must be a path relative to fwgen's data root, without '..'"
    return None


@dataclass(frozen=True)
class Download:
    """One pinned file: its name in the cache, its sha256 and where to get it."""

    file: str = field(check=_file_name)
    sha256: str = field(check=sha256_hex)
    urls: tuple[str, ...] = field(check=_urls)


@dataclass(frozen=True)
class BuildrootSpec(Download):
    version: str = field(check=non_empty)


@dataclass(frozen=True)
class KernelVariant(Download):
    version: str = field(check=non_empty)
    defconfig: str = field(check=non_empty)
    device_tree: str = field(check=non_empty)
    patches: str = field(check=_relative_path)
    fragment: str = field(check=_relative_path)
    requirements: tuple[str, ...] = field(check=_requirements)
    description: str = ""

    def patches_dir(self) -> Path:
        return paths.data_root() / self.patches

    def fragment_path(self) -> Path:
        return paths.data_root() / self.fragment


@dataclass(frozen=True)
class Qemu:
    machine: str
    memory: str
    binary: str = "qemu-system-arm"
    args: tuple[str, ...] = ()
    sd_append: str = ""
    initramfs_append: str = ""


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    run: str
    expect: str = ""
    timeout: float = 30.0


@dataclass(frozen=True)
class Smoke:
    checks: tuple[SmokeCheck, ...] = ()


@dataclass(frozen=True)
class Board:
    description: str
    arch: str
    default_kernel: str
    buildroot: BuildrootSpec
    kernels: dict[str, KernelVariant]
    qemu: Qemu
    smoke: Smoke = Smoke()
    name: str = dataclasses.field(default="", init=False)
    source: Path = dataclasses.field(default=Path(), init=False)

    def kernel(self, variant: str | None) -> KernelVariant:
        """The named kernel variant, or the default one for None."""
        chosen = variant or self.default_kernel
        try:
            return self.kernels[chosen]
        except KeyError:
            raise FwgenError(
                f"board '{self.name}' has no kernel variant '{chosen}'",
                f"use one of: {', '.join(self.kernels)} (see 'fwgen boards')",
            ) from None

    def downloads(self, variant: str | None) -> list[Download]:
        """Everything a build of this board with that kernel variant fetches."""
        return [self.buildroot, self.kernel(variant)]


def board_names() -> list[str]:
    root = paths.boards_dir()
    return sorted(p.parent.name for p in root.glob("*/board.toml"))


def load_board(name: str) -> Board:
    path = paths.boards_dir() / name / "board.toml"
    if not re.match(r"^[A-Za-z0-9_-]+$", name) or not path.is_file():
        known = ", ".join(board_names()) or "none"
        raise FwgenError(f"unknown board '{name}'", f"known boards: {known}")
    return load_board_file(path)


def load_board_file(path: Path) -> Board:
    board = build(Board, load_toml(path), path)
    if board.default_kernel not in board.kernels:
        raise RecipeError(
            f"{path}: key 'default_kernel': '{board.default_kernel}' is not a kernel variant",
            f"use one of: {', '.join(board.kernels) or '(none declared under [kernels])'}",
        )
    pinned: dict[str, str] = {}
    for download in [board.buildroot, *board.kernels.values()]:
        if pinned.setdefault(download.file, download.sha256) != download.sha256:
            raise RecipeError(
                f"{path}: '{download.file}' is pinned twice with different sha256 values",
                "one file name, one content: rename one of them or fix its sha256",
            )
    object.__setattr__(board, "name", path.parent.name)
    object.__setattr__(board, "source", path)
    return board
