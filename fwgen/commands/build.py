"""fwgen build: a board's images with Buildroot, or only its kernel (--kernel-only)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from fwgen import buildroot, ccache, checks, kernel, sources
from fwgen.board import load_board
from fwgen.commands import add_board_argument, board_arg
from fwgen.errors import FwgenError

NAME = "build"
HELP = (
    "build a board's bootable images with Buildroot (kernel, device tree, rootfs, SD card), "
    "or with --kernel-only just the kernel, modules and an initramfs"
)
KERNEL_ONLY_OPTIONS = ("kernel_src", "cross_compile", "rootfs")
BUILDROOT_ONLY_OPTIONS = ("dry_run", "prefetch", "buildroot_src")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per CPU, plus one) or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser)
    parser.add_argument(
        "--kernel", metavar="V", help="kernel variant (default: the board's default)"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=0,
        metavar="N",
        help="parallel jobs inside each package build (BR2_JLEVEL; default 0: CPUs + 1)",
    )
    parser.add_argument(
        "--clean", action="store_true", help="rebuild everything from scratch (make clean)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the inputs, the rebuild plan, the commands and the defconfig; change nothing",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="try URL/<file> first for fwgen's downloads, and use the first as Buildroot's "
        "BR2_PRIMARY_SITE; repeatable (also FWGEN_MIRROR)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="no network: every source must already be cached (also FWGEN_OFFLINE=1)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("build"),
        metavar="DIR",
        help="where builds live: DIR/<board>-<kernel>/ (default: ./build)",
    )
    parser.add_argument(
        "--prefetch",
        type=_jobs,
        default=0,
        metavar="N",
        help="download every package source first, N at a time (default 0: Buildroot "
        "downloads each when it needs it)",
    )
    parser.add_argument(
        "--ccache-remote",
        metavar="URL",
        help="share compile results with other hosts through ccache's remote storage after "
        "the local cache: redis://HOST[:PORT], http://HOST/PATH or file:///PATH "
        f"(also {ccache.ENV_URL})",
    )
    parser.add_argument(
        "--ccache-remote-read-only",
        action="store_true",
        help=f"read from the remote compile cache, never write (also {ccache.ENV_READ_ONLY}=1)",
    )
    parser.add_argument(
        "--buildroot-src",
        type=Path,
        metavar="DIR|TARBALL",
        help="use this Buildroot tree or tarball (it must be the pinned version) instead of "
        "downloading the pinned release",
    )

    only = parser.add_argument_group(
        "kernel-only build (a fast loop for kernel work, without Buildroot)"
    )
    only.add_argument(
        "--kernel-only",
        action="store_true",
        help="build only the kernel, its modules and an initramfs, into "
        "DIR/<board>-<kernel>-kernel/images",
    )
    only.add_argument(
        "--kernel-src",
        metavar="DIR|TARBALL",
        help="kernel source tree or tarball (default: the pinned, verified tarball)",
    )
    only.add_argument(
        "--cross-compile",
        metavar="PREFIX",
        help="CROSS_COMPILE prefix (default: an earlier Buildroot build's toolchain, else "
        "arm-linux-gnueabi(hf)- on PATH)",
    )
    only.add_argument(
        "--rootfs",
        type=Path,
        metavar="DIR|CPIO",
        help="root filesystem to pack with the overlays and modules (a directory or a "
        "cpio/cpio.gz, e.g. a busybox rootfs with a getty on ttyAMA0)",
    )


def _check_combination(args: argparse.Namespace) -> None:
    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    if args.kernel_only:
        wrong = [flag(n) for n in BUILDROOT_ONLY_OPTIONS if getattr(args, n)]
        if wrong:
            raise FwgenError(
                f"{', '.join(wrong)} only apply to the Buildroot build, not to --kernel-only",
                "drop them, or drop --kernel-only",
            )
        if args.rootfs is None:
            raise FwgenError(
                "--kernel-only needs a root filesystem: --rootfs DIR|CPIO",
                "give a directory or a cpio(.gz) with an init (e.g. busybox with a getty on "
                "ttyAMA0); fwgen adds the board's overlays and the modules",
            )
    else:
        wrong = [flag(n) for n in KERNEL_ONLY_OPTIONS if getattr(args, n)]
        if wrong:
            raise FwgenError(
                f"{', '.join(wrong)} only apply with --kernel-only",
                "add --kernel-only, or drop them",
            )


def _check_inputs(args: argparse.Namespace) -> None:
    """Every input checked before anything is downloaded or built."""
    board = load_board(args.board)
    board.kernel(args.kernel)
    checks.output_dir(args.output, "-o")
    if args.buildroot_src is not None:
        checks.existing(args.buildroot_src, "--buildroot-src", "Buildroot tree or release tarball")
    if args.rootfs is not None:
        checks.existing(args.rootfs, "--rootfs", "root filesystem directory or cpio(.gz)")
    if args.kernel_src is not None:
        checks.existing(args.kernel_src, "--kernel-src", "kernel source tree or tarball")
    sources.mirror_list(args.mirror)
    sources.is_offline(args.offline)


def run(args: argparse.Namespace) -> int:
    args.board = board_arg(args)
    _check_combination(args)
    _check_inputs(args)
    if args.kernel_only:
        return _run_kernel_only(args)
    options = buildroot.BuildOptions(
        board=args.board,
        kernel=args.kernel,
        output_root=args.output,
        jobs=args.jobs,
        clean=args.clean,
        dry_run=args.dry_run,
        mirrors=tuple(args.mirror),
        offline=args.offline,
        prefetch=args.prefetch,
        buildroot_src=args.buildroot_src,
        command=_rerun(args),
        ccache_remote=ccache.resolve(args.ccache_remote, args.ccache_remote_read_only),
    )
    result = buildroot.build(options)
    if result is not None:
        print(result.images / "manifest.json")
    return 0


def _run_kernel_only(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.clean:
        kernel.clean(args.output, board, args.kernel or board.default_kernel)
    images = kernel.build_kernel_only(
        board,
        args.kernel,
        rootfs=args.rootfs,
        output=args.output,
        kernel_src=args.kernel_src,
        cross_compile=args.cross_compile,
        jobs=args.jobs or None,
        mirrors=tuple(args.mirror),
        offline=args.offline,
        ccache_remote=ccache.resolve(args.ccache_remote, args.ccache_remote_read_only),
    )
    print(images / "manifest.json")
    return 0


def _rerun(args: argparse.Namespace) -> str:
    """The command that resumes this build (without --clean or --dry-run)."""
    words = [NAME, args.board]
    if args.kernel:
        words += ["--kernel", args.kernel]
    if args.output != Path("build"):
        words += ["-o", str(args.output)]
    if args.jobs:
        words += ["-j", str(args.jobs)]
    for mirror in args.mirror:
        words += ["--mirror", mirror]
    if args.offline:
        words.append("--offline")
    if args.buildroot_src:
        words += ["--buildroot-src", str(args.buildroot_src)]
    if args.ccache_remote:
        words += ["--ccache-remote", args.ccache_remote]
    if args.ccache_remote_read_only:
        words.append("--ccache-remote-read-only")
    return "fwgen " + shlex.join(words)
