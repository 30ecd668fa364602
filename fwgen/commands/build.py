"""fwgen build: the full Buildroot build of a board (images/ with manifest and checksums)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from fwgen import buildroot

NAME = "build"
HELP = "build a board's bootable images with Buildroot (kernel, device tree, rootfs, SD card)"


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per CPU, plus one) or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("board", metavar="BOARD", help="a board name (see 'fwgen boards')")
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
        "--buildroot-src",
        type=Path,
        metavar="DIR|TARBALL",
        help="use this Buildroot tree or tarball (it must be the pinned version) instead of "
        "downloading the pinned release",
    )


def run(args: argparse.Namespace) -> int:
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
    )
    result = buildroot.build(options)
    if result is not None:
        print(result.images / "manifest.json")
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
    return "fwgen " + shlex.join(words)
