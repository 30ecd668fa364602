"""Where a build keeps everything: the one owner of every path of both build kinds.

A build root (`-o DIR`, default `build/`) holds one directory per board, kernel variant and
build kind; every command finds a build through it:

    <root>/<board>-<variant>/           Buildroot's output directory (O=)
        fwgen/                          fwgen's own files (defconfig, linux.config,
                                        global-patch-dir/, state.json, logs)
        build/linux-<version>/          the kernel tree Buildroot builds
        images/                         the images, manifest.json, SHA256SUMS
    <root>/<board>-<variant>-kernel/    a kernel-only build (src/, obj/, images/, ...)
    <images>-smoke/                     fwgen smoke's results, next to the images it booted
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("build")
IMAGES = "images"


@dataclass(frozen=True)
class BuildrootBuild:
    """The paths of a Buildroot build; `output` is Buildroot's O= (absolute)."""

    output: Path

    @property
    def fwgen(self) -> Path:
        return self.output / "fwgen"

    @property
    def defconfig(self) -> Path:  # rendered from the recipe
        return self.fwgen / "defconfig"

    @property
    def kernel_config(self) -> Path:  # the kconfig stage's (BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE)
        return self.fwgen / "linux.config"

    @property
    def patch_dir(self) -> Path:  # BR2_GLOBAL_PATCH_DIR, written from the recipe
        return self.fwgen / "global-patch-dir"

    def series_dir(self, kernel_version: str) -> Path:
        """The kernel series' copy Buildroot applies, in the global patch dir."""
        return self.patch_dir / "linux" / kernel_version

    @property
    def state(self) -> Path:
        return self.fwgen / "state.json"

    @property
    def build_log(self) -> Path:
        return self.fwgen / "build.log"

    @property
    def steps_log(self) -> Path:
        return self.fwgen / "steps.log"

    @property
    def show_info(self) -> Path:
        return self.fwgen / "show-info.json"

    @property
    def ccache_stats(self) -> Path:
        return self.fwgen / "ccache-stats.log"

    @property
    def images(self) -> Path:
        return self.output / IMAGES

    # Buildroot's own places in its output directory.
    @property
    def dot_config(self) -> Path:
        return self.output / ".config"

    @property
    def packages(self) -> Path:  # build/<package>-<version>/
        return self.output / "build"

    @property
    def package_file_list(self) -> Path:  # which package installed which target file
        return self.packages / "packages-file-list.txt"

    @property
    def host(self) -> Path:
        return self.output / "host"

    @property
    def target(self) -> Path:
        return self.output / "target"

    def kernel_tree(self, kernel_version: str) -> Path:
        """Where Buildroot extracts, patches and builds the kernel."""
        return self.packages / f"linux-{kernel_version}"


@dataclass(frozen=True)
class KernelOnlyBuild:
    """The paths of a kernel-only build (fwgen.kernel)."""

    work: Path

    @property
    def src(self) -> Path:  # the patched source tree
        return self.work / "src"

    @property
    def obj(self) -> Path:  # Kbuild's O=
        return self.work / "obj"

    @property
    def kernel_config(self) -> Path:
        return self.obj / ".config"

    @property
    def modules(self) -> Path:  # the module packages, built with M=
        return self.work / "modules"

    @property
    def staging(self) -> Path:  # lib/modules/<release>/ for the initramfs
        return self.work / "staging"

    @property
    def state(self) -> Path:
        return self.work / "state.json"

    @property
    def build_log(self) -> Path:
        return self.work / "build.log"

    @property
    def ccache_stats(self) -> Path:
        return self.work / "ccache-stats.log"

    @property
    def images(self) -> Path:
        return self.work / IMAGES


def buildroot(root: Path, board: str, variant: str) -> BuildrootBuild:
    return BuildrootBuild((Path(root) / f"{board}-{variant}").absolute())


def kernel_only(root: Path, board: str, variant: str) -> KernelOnlyBuild:
    return KernelOnlyBuild(Path(root) / f"{board}-{variant}-kernel")


def images_dir(root: Path, board: str, variant: str) -> Path:
    """The images of the newer finished build of this board and variant under `root` (either
    kind); without one, where a Buildroot build would put them."""
    candidates = [
        Path(root) / f"{board}-{variant}" / IMAGES,
        kernel_only(root, board, variant).images,
    ]
    built = [c for c in candidates if (c / "manifest.json").is_file()]
    if not built:
        return candidates[0]
    return max(built, key=lambda c: (c / "manifest.json").stat().st_mtime_ns)


def smoke_results(images: Path) -> Path:
    """fwgen smoke's default results directory for an images directory."""
    return images.with_name(images.name + "-smoke")


def build_of(images: Path) -> Path:
    """The build directory (Buildroot's O=, or a kernel-only build's) that holds `images`."""
    return images.resolve().parent
