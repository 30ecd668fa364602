"""Board recipes: board/<name>/board.toml, validated on load.

The recipe decides everything a stage needs (versions, pins, kernel variants, QEMU, checks);
stages read it and never re-derive what it says.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from fwgen import modules, paths
from fwgen.board_smoke import Smoke
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


def _recipe_path(value: str) -> str | None:
    if "\0" in value or "\n" in value:
        return "must be a path (no NUL or newline characters)"
    return None


def _recipe_paths(value: tuple[str, ...]) -> str | None:
    for item in value:
        if not item:
            return "an empty string is not a path"
        if problem := _recipe_path(item):
            return f"{item!r} {problem}"
    return None


def _beside(base: Path, value: str) -> Path:
    """A recipe path: relative ones are relative to the recipe's folder (`base`)."""
    return Path(os.path.normpath(base / value))


@dataclass(frozen=True)
class Download:
    """One pinned file: its name in the cache, its sha256 and where to get it."""

    file: str = field(check=_file_name)
    sha256: str = field(check=sha256_hex)
    urls: tuple[str, ...] = field(check=_urls)


_BR2_LINE_RE = re.compile(r"^BR2_[A-Za-z0-9_]+=(y|\".*\"|[0-9]+)$")
_SIZE_RE = re.compile(r"^([1-9][0-9]*)([KMG])$")
KERNEL_IMAGES = {"zImage": "ZIMAGE", "uImage": "UIMAGE", "Image": "IMAGE", "vmlinux": "VMLINUX"}


def _br2_lines(value: tuple[str, ...]) -> str | None:
    for item in value:
        if not _BR2_LINE_RE.match(item):
            return f'{item!r} is not a Buildroot line BR2_SYMBOL=y, ="string" or =number'
    return None


def _gcc(value: str) -> str | None:
    return None if re.match(r"^[0-9]+$", value) else 'must be a GCC major version, e.g. "12"'


def _power_of_two_size(value: str) -> str | None:
    match = _SIZE_RE.match(value)
    if not match:
        return "must be a size like 64M (a number with K, M or G)"
    number = int(match.group(1))
    if number & (number - 1):
        return "must be a power of two (QEMU's SD card model wants one), e.g. 64M or 128M"
    return None


def _kernel_image(value: str) -> str | None:
    if value not in KERNEL_IMAGES:
        return f"must be one of: {', '.join(KERNEL_IMAGES)}"
    return None


def _getty_port(value: str) -> str | None:
    return None if re.match(r"^[A-Za-z0-9]+$", value) else "must be a tty name, e.g. ttyAMA0"


@dataclass(frozen=True)
class BuildrootSpec(Download):
    """The Buildroot release and what fwgen's Buildroot configuration takes from the board.

    `target` are the Buildroot lines choosing architecture, CPU and FPU; `gcc` the GCC major
    version (BR2_GCC_VERSION_<gcc>_X); `extra` further BR2_ lines (packages, options).
    Paths are relative to the recipe's folder (`base`, set by the loader).
    """

    version: str = field(check=non_empty)
    target: tuple[str, ...] = field(default=(), check=_br2_lines)
    gcc: str = field(default="12", check=_gcc)
    kernel_image: str = field(default="zImage", check=_kernel_image)
    rootfs_size: str = field(default="64M", check=_power_of_two_size)
    getty_port: str = field(default="ttyAMA0", check=_getty_port)
    post_image_script: str = field(default="", check=_recipe_path)
    genimage_config: str = field(default="", check=_recipe_path)
    extra: tuple[str, ...] = field(default=(), check=_br2_lines)
    base: Path = field(default=Path(), internal=True)

    def post_image_path(self) -> Path | None:
        return _beside(self.base, self.post_image_script) if self.post_image_script else None

    def genimage_path(self) -> Path | None:
        return _beside(self.base, self.genimage_config) if self.genimage_config else None


def _license_files(value: dict[str, str]) -> str | None:
    for name, digest in value.items():
        if not re.match(r"^[A-Za-z0-9._/+-]+$", name) or ".." in name.split("/"):
            return f"{name!r} is not a path inside the kernel source"
        if problem := sha256_hex(digest):
            return f"{name}: {problem}"
    return None


@dataclass(frozen=True)
class KernelVariant(Download):
    version: str = field(check=non_empty)
    defconfig: str = field(check=non_empty)
    device_tree: str = field(check=non_empty)
    patches: str = field(check=_recipe_path)
    fragment: str = field(check=_recipe_path)
    requirements: tuple[str, ...] = field(check=_requirements)
    description: str = ""
    # License file -> its sha256: BR2_LINUX_KERNEL_LICENSE_FILES for `make legal-info`, whose
    # hash check fwgen feeds from here. Empty: Buildroot's default list (COPYING and
    # LICENSES/..., which kernels before 4.16 do not have) and Buildroot's own hashes.
    license_files: dict[str, str] = field(default_factory=dict, check=_license_files)
    base: Path = field(default=Path(), internal=True)  # the recipe's folder

    def patches_dir(self) -> Path:
        return _beside(self.base, self.patches)

    def fragment_path(self) -> Path:
        return _beside(self.base, self.fragment)


@dataclass(frozen=True)
class Qemu:
    machine: str
    memory: str
    binary: str = "qemu-system-arm"
    args: tuple[str, ...] = ()
    sd_append: str = ""
    initramfs_append: str = ""


_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _module_packages(value: tuple[str, ...]) -> str | None:
    if len(set(value)) != len(value):
        return "a package is named twice"
    for name in value:
        makefile = modules.source_dir(name) / "Makefile" if _PACKAGE_RE.match(name) else None
        if makefile is None or not makefile.is_file():
            return (
                f"{name!r} is not a kernel-module package of br2-external "
                f"(no package/{name}/src/Makefile there)"
            )
    return None


@dataclass(frozen=True)
class Board:
    description: str
    arch: str
    default_kernel: str
    buildroot: BuildrootSpec
    kernels: dict[str, KernelVariant]
    qemu: Qemu
    overlays: tuple[str, ...] = field(check=_recipe_paths)
    # br2-external's kernel-module packages, in build order: both build paths build them.
    module_packages: tuple[str, ...] = field(check=_module_packages)
    smoke: Smoke = Smoke()
    # Set by the loader: the board's name (its folder's), the recipe file and its folder.
    name: str = field(default="", internal=True)
    source: Path = field(default=Path(), internal=True)
    base: Path = field(default=Path(), internal=True)

    @property
    def argument(self) -> str:
        """How a command line names this board: its name when that finds this very recipe
        (fwgen's own, or on FWGEN_BOARD_PATH), else --board with the recipe's path."""
        try:
            found = load_board(self.name) if self.name else None
        except FwgenError:
            found = None
        if found is not None and found.source.resolve() == self.source.resolve():
            return self.name
        return f"--board {shlex.quote(str(self.source))}"

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

    def overlay_dirs(self) -> list[Path]:
        """Rootfs overlays, in the order they are applied (later ones win)."""
        return [_beside(self.base, o) for o in self.overlays]

    def downloads(self, variant: str | None) -> list[Download]:
        """Everything a build of this board with that kernel variant fetches."""
        return [self.buildroot, self.kernel(variant)]


BOARD_PATH_VAR = "FWGEN_BOARD_PATH"
RECIPE = "board.toml"


def search_path() -> list[Path]:
    """Where board names are looked up: $FWGEN_BOARD_PATH (':'-separated folders, each
    holding <name>/board.toml, searched in order), then fwgen's own board/ folder."""
    folders = []
    for entry in os.environ.get(BOARD_PATH_VAR, "").split(os.pathsep):
        if not entry:
            continue
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise FwgenError(
                f"{BOARD_PATH_VAR} names {entry}, which is not a folder",
                f"create it (mkdir -p {shlex.quote(entry)}) or remove it from {BOARD_PATH_VAR}",
            )
        folders.append(folder)
    return [*folders, paths.boards_dir()]


def recipe_files() -> list[tuple[str, Path]]:
    """(name, recipe file) for every board on the search path; the first of a name wins."""
    found: dict[str, Path] = {}
    for folder in search_path():
        for recipe in sorted(folder.glob(f"*/{RECIPE}")):
            found.setdefault(recipe.parent.name, recipe)
    return sorted(found.items())


def board_names() -> list[str]:
    return [name for name, _ in recipe_files()]


def is_recipe_path(name: str) -> bool:
    """A BOARD argument naming a recipe file rather than one of fwgen's boards."""
    return "/" in name or name.endswith(".toml")


def recipe_file(given: str | Path) -> Path:
    """The recipe file a path names: the file itself, or board.toml in the folder."""
    path = Path(given).expanduser()
    if path.is_dir():
        if (path / RECIPE).is_file():
            return (path / RECIPE).resolve()
        raise FwgenError(
            f"board recipe {given}: a folder without a {RECIPE}",
            f"give the recipe file, or a folder holding {RECIPE}",
        )
    if not path.is_file():
        raise FwgenError(
            f"board recipe {given}: no such file",
            "give a board name (see: fwgen boards) or the path of a board.toml",
        )
    return path.resolve()


def load_board(name: str) -> Board:
    """A board by name (on the search path), or a recipe file by path (its board name is its
    folder's)."""
    if is_recipe_path(name):
        return load_board_file(recipe_file(name))
    if re.match(r"^[A-Za-z0-9_-]+$", name):
        for folder in search_path():
            path = folder / name / RECIPE
            if path.is_file():
                return load_board_file(path)
    known = ", ".join(board_names()) or "none"
    raise FwgenError(
        f"unknown board '{name}'",
        f"known boards: {known}; or give a recipe with --board FILE (see: fwgen boards)",
    )


def _recipe_paths_exist(board: Board, path: Path) -> None:
    """Every path of the recipe must exist (a file or a folder, as its key says)."""
    br = board.buildroot
    wanted: list[tuple[str, str, Path | None, bool]] = [  # key, as written, resolved, folder?
        ("buildroot.post_image_script", br.post_image_script, br.post_image_path(), False),
        ("buildroot.genimage_config", br.genimage_config, br.genimage_path(), False),
    ]
    for variant, k in board.kernels.items():
        wanted.append((f'kernels."{variant}".patches', k.patches, k.patches_dir(), True))
        wanted.append((f'kernels."{variant}".fragment', k.fragment, k.fragment_path(), False))
    for i, (text, folder) in enumerate(zip(board.overlays, board.overlay_dirs(), strict=True)):
        wanted.append((f"overlays[{i}]", text, folder, True))
    for key, text, resolved, is_dir in wanted:
        if resolved is None or (resolved.is_dir() if is_dir else resolved.is_file()):
            continue
        kind = "folder" if is_dir else "file"
        what = "does not exist" if not resolved.exists() else f"is not a {kind}"
        raise RecipeError(
            f"{path}: key '{key}': {text!r} ({resolved}) {what}; paths in a recipe are "
            "relative to the recipe's folder",
            f"correct the path in {path}, or create the {kind}",
        )


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
    base = path.parent
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", base.name):
        raise RecipeError(
            f"{path}: a board is named after its recipe's folder, and {base.name!r} is not a "
            "plain name (letters, digits, . _ + -)",
            f"put the recipe into a folder named after the board, e.g. myboard/{RECIPE}",
        )
    board = dataclasses.replace(
        board,
        name=path.parent.name,
        source=path,
        base=base,
        buildroot=dataclasses.replace(board.buildroot, base=base),
        kernels={v: dataclasses.replace(k, base=base) for v, k in board.kernels.items()},
    )
    _recipe_paths_exist(board, path)
    return board
