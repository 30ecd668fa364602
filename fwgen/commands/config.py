"""fwgen config: the kernel .config of a board, from the kernel's own Kconfig (kconfiglib)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from fwgen import checks, kconfig
from fwgen.board import KernelVariant
from fwgen.commands import add_board_argument, board_from_args
from fwgen.errors import FwgenError

NAME = "config"
HELP = "write a board's kernel .config (defconfig + fragment + requirements) or explain a symbol"

log = logging.getLogger("fwgen.config")


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser)
    parser.add_argument("--kernel", metavar="V", help="kernel variant (default: the board's)")
    parser.add_argument(
        "--kernel-src",
        metavar="DIR|TARBALL",
        required=True,
        help="an extracted kernel source, or its tarball (extracted into the cache)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the full .config here (default: print it, unless --explain is given)",
    )
    parser.add_argument(
        "--savedefconfig",
        metavar="FILE",
        type=Path,
        help="also write the minimal defconfig (as 'make savedefconfig' does)",
    )
    parser.add_argument(
        "--explain",
        metavar="SYMBOL",
        help="print why SYMBOL has its value: prompts, dependencies, selectors, defaults",
    )
    parser.add_argument(
        "--cross-compile",
        metavar="PREFIX",
        default=kconfig.DEFAULT_CROSS_COMPILE,
        help="cross compiler prefix; Kconfig of linux >= 4.18 runs PREFIXgcc "
        f"(default: {kconfig.DEFAULT_CROSS_COMPILE})",
    )


def _kernel_source(arg: str) -> Path:
    from fwgen.kernelsrc import kernel_source  # lazily: extraction needs the cache machinery

    return kernel_source(arg)


def _major_minor(version: str) -> str:
    match = re.match(r"^(\d+)\.(\d+)", version)
    return f"{match.group(1)}.{match.group(2)}" if match else version


def _check_version(srctree: Path, variant: KernelVariant, variant_name: str) -> None:
    found = kconfig.kernel_version(srctree)
    if _major_minor(found) != _major_minor(variant.version):
        raise FwgenError(
            f"{srctree} is linux {found}, but kernel variant {variant_name} is linux "
            f"{variant.version}",
            f"pass --kernel {_major_minor(found)} if the board has that variant, "
            "or the matching --kernel-src",
        )


def run(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    for option, path in (("-o", args.output), ("--savedefconfig", args.savedefconfig)):
        if path is not None:
            checks.output_file(path, option)
    variant_name = args.kernel or board.default_kernel
    variant = board.kernel(args.kernel)
    srctree = _kernel_source(args.kernel_src)
    _check_version(srctree, variant, variant_name)
    result = kconfig.configure_variant(variant, srctree, cross_compile=args.cross_compile)
    if args.output is not None:
        result.write(args.output)
        log.info("wrote %s (%s)", args.output, result.sources)
    if args.savedefconfig is not None:
        result.write_defconfig(args.savedefconfig)
        log.info("wrote %s", args.savedefconfig)
    if args.explain:
        sys.stdout.write(result.explain(args.explain))
    elif args.output is None:
        sys.stdout.write(result.text())
    return 0
