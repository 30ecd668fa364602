"""The Buildroot configuration of a board: rendered from its recipe, then proven to survive.

`render()` turns the board recipe (one kernel variant) into a Buildroot defconfig with the
jinja2 template fwgen/templates/defconfig.j2. Every path in it is absolute, computed at render
time from fwgen.paths and the build's output directory, so the file works from any directory
and for an installed fwgen alike.

`dropped_lines()` is the check Buildroot's own test infrastructure makes
(support/testing/infra/builder.py, is_defconfig_valid): after `make defconfig`, every line
that was asked for must appear verbatim in the resulting .config; a line Buildroot dropped or
changed (an unknown symbol, an unmet dependency, a choice that went elsewhere) is an error.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from fwgen import __version__, fsutil, layout, modules, patches, paths
from fwgen.board import KERNEL_IMAGES, Board, KernelVariant
from fwgen.errors import FwgenError

TEMPLATE = "defconfig.j2"

# Characters that would break out of the single quotes post-image.sh's arguments travel in
# (Buildroot runs the post-image command line through the shell).
_UNSAFE_ARG = re.compile(r"['\"\\$`\n]")


@dataclass(frozen=True)
class Locations:
    """Where a build's Buildroot configuration points: all absolute."""

    kernel_config: Path  # the kconfig stage's full .config (BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE)
    dl_dir: Path  # BR2_DL_DIR
    ccache_dir: Path  # BR2_CCACHE_DIR
    patch_dir: Path  # BR2_GLOBAL_PATCH_DIR: the recipe's series and kernel hashes (written)

    @classmethod
    def for_output(cls, output: Path) -> Locations:
        """The standard places for a build whose Buildroot output directory is `output`."""
        build = layout.BuildrootBuild(Path(output).absolute())
        return cls(
            kernel_config=build.kernel_config,
            dl_dir=buildroot_dl_dir(),
            ccache_dir=paths.cache_dir() / "ccache",
            patch_dir=build.patch_dir,
        )


def buildroot_dl_dir() -> Path:
    """Buildroot's download directory (BR2_DL_DIR), shared by every build, in fwgen's cache."""
    return paths.cache_dir() / "buildroot-dl"


def global_patch_files(board: Board, variant_name: str) -> dict[str, bytes]:
    """BR2_GLOBAL_PATCH_DIR's content for one kernel variant: relative path -> bytes.

    Everything comes from the recipe, so Buildroot applies and checks exactly what the
    recipe says, wherever its files live:
    - `linux/<version>/`: the variant's patch series (copies) with a `series` file giving
      their order (patches.series() decides it, as for every other stage);
    - `linux/linux.hash`, and for the toolchain's headers (BR2_KERNEL_HEADERS_AS_KERNEL)
      `linux-headers/linux-headers.hash`: the pinned kernel tarball and the license files.
      Buildroot checks every hash file it finds for a file (its own too), so a pin must not
      appear anywhere else with another value.
    """
    variant = board.kernel(variant_name)
    series = patches.series(variant.patches_dir())
    files = {f"linux/{variant.version}/{p.name}": p.read_bytes() for p in series}
    files[f"linux/{variant.version}/series"] = "".join(f"{p.name}\n" for p in series).encode()
    lines = [
        f"# Written by fwgen from {recipe_label(board)}, kernel variant {variant_name}: the",
        "# pinned tarball and the license files (BR2_LINUX_KERNEL_LICENSE_FILES).",
        *hash_lines(variant),
    ]
    hashes = ("\n".join(lines) + "\n").encode()
    files["linux/linux.hash"] = hashes
    files["linux-headers/linux-headers.hash"] = hashes
    return files


def hash_lines(variant: KernelVariant) -> list[str]:
    """Buildroot hash-file lines for a kernel variant: its pinned tarball, its license files."""
    return [
        f"sha256  {variant.sha256}  {variant.file}",
        *(f"sha256  {digest}  {name}" for name, digest in variant.license_files.items()),
    ]


def write_global_patch_dir(root: Path, board: Board, variant_name: str) -> None:
    """Make `root` hold exactly global_patch_files(); unchanged files keep their mtime."""
    wanted = global_patch_files(board, variant_name)
    root = Path(root)
    if root.is_dir():
        for path in sorted(root.rglob("*"), reverse=True):
            rel = path.relative_to(root).as_posix()
            if path.is_dir() and not path.is_symlink():
                if not any(name.startswith(rel + "/") for name in wanted):
                    shutil.rmtree(path)
            elif rel not in wanted:
                path.unlink()
    for rel, data in wanted.items():
        target = root / rel
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(target, data, mode=0o644)


def headers_series(kernel_version: str) -> str:
    """The BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_<x>_<y> suffix of a kernel version."""
    match = re.match(r"^(\d+)\.(\d+)", kernel_version)
    if not match:
        raise FwgenError(
            f"kernel version {kernel_version!r} does not start with MAJOR.MINOR",
            "fix the kernel variant's 'version' in the board recipe",
        )
    return f"{match.group(1)}_{match.group(2)}"


def kconfig_string(value: object) -> str:
    """A Kconfig string value, quoted and escaped as Buildroot's .config writes it."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _checked_arg(value: str, key: str, board: Board) -> str:
    if _UNSAFE_ARG.search(value):
        raise FwgenError(
            f"{board.source}: key '{key}': {value!r} contains a quote, backslash, $ or `",
            "the post-image script gets it through a shell command line; remove those",
        )
    return value


def post_image_args(board: Board, variant_name: str, place: Callable[[Path], str] = str) -> str:
    """BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS: the genimage config and the QEMU command line.
    `place` writes a path as the defconfig names it."""
    br = board.buildroot
    variant = board.kernel(variant_name)
    genimage = br.genimage_path()
    if genimage is None:
        raise FwgenError(
            f"{board.source}: key 'buildroot.genimage_config': missing, but "
            "'buildroot.post_image_script' is set",
            "name the genimage configuration of the SD card image",
        )
    qemu = board.qemu
    words = [
        f"-c {place(genimage)}",
        f"-k {br.kernel_image}",
        f"-d {Path(variant.device_tree).name}.dtb",
        f"-M {_checked_arg(qemu.machine, 'qemu.machine', board)}",
        f"-m {_checked_arg(qemu.memory, 'qemu.memory', board)}",
        f"-q {_checked_arg(qemu.binary, 'qemu.binary', board)}",
    ]
    if qemu.sd_append:
        words.append(f"-a '{_checked_arg(qemu.sd_append, 'qemu.sd_append', board)}'")
    if qemu.args:
        joined = " ".join(qemu.args)
        words.append(f"-x '{_checked_arg(joined, 'qemu.args', board)}'")
    return " ".join(words)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fwgen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["kstr"] = kconfig_string
    return env


def _existing(path: Path, key: str, board: Board) -> Path:
    if not path.exists():
        raise FwgenError(
            f"{board.source}: key '{key}': {path} does not exist",
            "fix the path (relative to the recipe's folder) or create it",
        )
    return path


def render(
    board: Board,
    variant_name: str | None,
    locations: Locations,
    *,
    jobs: int = 0,
    primary_site: str = "",
    primary_site_only: bool = False,
) -> str:
    """The Buildroot defconfig fwgen builds `board` with, for one kernel variant, as text."""
    name = variant_name or board.default_kernel
    if jobs < 0:
        raise FwgenError(f"-j {jobs}: the job count cannot be negative", "give -j 0 (auto) or more")
    for key, value in (
        ("dl_dir", locations.dl_dir),
        ("kernel_config", locations.kernel_config),
        ("patch_dir", locations.patch_dir),
    ):
        if not Path(value).is_absolute():
            raise ValueError(f"{key} must be absolute, got {value}")
        plain_path(Path(value))
    plain_path(locations.ccache_dir)
    header = [
        f"# Buildroot {board.buildroot.version} configuration for board {board.name}, "
        f"kernel variant {name}.",
        f"# Rendered by fwgen {__version__} from {recipe_label(board)}; do not edit: "
        "change the recipe.",
        "# fwgen checks that every line below survives Buildroot's olddefconfig.",
    ]
    context = recipe_context(board, name, _plain_place, header)
    context.update(
        dl_dir=locations.dl_dir,
        primary_site=primary_site.rstrip("/"),
        primary_site_only=primary_site_only and bool(primary_site),
        global_patch_dir=locations.patch_dir,
        patch_dir_note=", written by fwgen",
        ccache_dir=locations.ccache_dir,
        jobs=jobs,
        kernel_config=locations.kernel_config,
    )
    return render_context(context)


def recipe_context(
    board: Board, name: str, place: Callable[[Path], str], header: list[str]
) -> dict[str, Any]:
    """What the defconfig template takes from the recipe (one kernel variant); `place` writes
    a path of the recipe's files as the defconfig names it. The build's own settings (download
    and ccache directories, jobs, mirror, kernel configuration, patch directory) are left
    empty for the caller."""
    variant = board.kernel(name)
    br = board.buildroot
    post_image = br.post_image_path()
    genimage = br.genimage_path()
    return {
        "header": header,
        "board": board.name,
        "buildroot_version": br.version,
        "target": br.target,
        "gcc": br.gcc,
        "headers_series": headers_series(variant.version),
        "dl_dir": "",
        "primary_site": "",
        "primary_site_only": False,
        "global_patch_dir": "",
        "patch_dir_note": "",
        "ccache_dir": "",
        "jobs": None,
        "getty_port": br.getty_port,
        "overlays": [place(_existing(d, "overlays", board)) for d in board.overlay_dirs()],
        "post_image_script": place(_existing(post_image, "buildroot.post_image_script", board))
        if post_image
        else "",
        "post_image_args": post_image_args(board, name, place) if post_image else "",
        "kernel_version": variant.version,
        "kernel_config": "",
        "kernel_defconfig": "",
        "kernel_fragments": [],
        "license_files": list(variant.license_files),
        "kernel_image_symbol": KERNEL_IMAGES[br.kernel_image],
        "device_tree": variant.device_tree,
        "module_symbols": [modules.symbol(p) for p in board.module_packages],
        "extra": br.extra,
        "rootfs_size": br.rootfs_size,
        "genimage_config": bool(
            genimage and _existing(genimage, "buildroot.genimage_config", board)
        ),
    }


def render_context(context: Mapping[str, Any]) -> str:
    return _environment().get_template(TEMPLATE).render(context)


def _plain_place(path: Path) -> str:
    plain_path(path)
    return str(path)


def plain_path(path: Path) -> None:
    """Buildroot splits its path options on blanks and runs them through the shell."""
    if re.search(r"[\s'\"\\$`]", str(path)):
        raise FwgenError(
            f"{path}: Buildroot cannot use a path with blanks, quotes, backslashes, $ or `",
            "move it (or fwgen's cache: FWGEN_CACHE_DIR, or the output: -o DIR) to a plain path",
        )


def recipe_label(board: Board) -> str:
    """The recipe's path relative to the data root (no machine-specific prefix)."""
    try:
        return board.source.relative_to(paths.data_root()).as_posix()
    except ValueError:
        return board.source.name


# --- what must survive ---------------------------------------------------------------------

_LINE = re.compile(r"^(BR2_[A-Za-z0-9_]+=.*|# BR2_[A-Za-z0-9_]+ is not set)$")


def requested_lines(text: str) -> list[str]:
    """The configuration lines of a defconfig (assignments and `# X is not set`)."""
    return [line for line in text.splitlines() if _LINE.match(line)]


def symbol_of(line: str) -> str:
    """The symbol a configuration line (see requested_lines) sets."""
    return line.split()[1] if line.startswith("# ") else line.partition("=")[0]


def symbol_values(text: str) -> dict[str, str]:
    """{symbol: value} of a defconfig's lines; `# X is not set` gives "n"."""
    return {
        symbol_of(line): "n" if line.startswith("# ") else line.partition("=")[2]
        for line in requested_lines(text)
    }


def dropped_lines(defconfig_text: str, dot_config: Path) -> list[str]:
    """Lines of the defconfig that the resulting .config does not contain verbatim."""
    try:
        present = set(Path(dot_config).read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        raise FwgenError(
            f"{dot_config}: missing after `make defconfig`",
            "look at the defconfig log; the Buildroot output directory may be damaged",
        ) from None
    return [line for line in requested_lines(defconfig_text) if line not in present]


def describe_dropped(dropped: list[str], dot_config: Path) -> str:
    """Each dropped line with what the .config says about that symbol instead."""
    text = Path(dot_config).read_text(encoding="utf-8")
    found = {symbol_of(line): line for line in requested_lines(text)}
    out = []
    for line in dropped:
        symbol = symbol_of(line)
        actual = found.get(symbol)
        if actual is None:
            out.append(f"  {line}    (the .config has no {symbol}: unknown or hidden symbol)")
        else:
            out.append(f"  {line}    (the .config has: {actual})")
    return "\n".join(out)


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` atomically unless `path` already holds it; True if it was written.

    Keeping an unchanged file untouched keeps its mtime, so Buildroot (which compares
    timestamps) does not reconfigure anything for it.
    """
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, text)
    return True
