"""fwgen mirror: export every source a board's builds need, for building without network."""

from __future__ import annotations

import argparse
from pathlib import Path

from fwgen import checks, mirror_export
from fwgen.commands import add_board_argument, board_from_args

NAME = "mirror"
HELP = (
    "gather every source a board's Buildroot builds need (Buildroot's make source, plus "
    "fwgen's pinned tarballs) into a mirror directory for air-gapped builds"
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="the mirror directory to write (new, empty, or an earlier fwgen mirror to refresh)",
    )
    parser.add_argument(
        "--kernel",
        action="append",
        default=[],
        metavar="V",
        help="only this kernel variant (repeatable; default: every variant of the board)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="download from this mirror first (BR2_PRIMARY_SITE too); repeatable "
        "(also FWGEN_MIRROR)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="use only the cache and the --mirror URLs (also FWGEN_OFFLINE=1)",
    )
    parser.add_argument(
        "--buildroot-src",
        type=Path,
        metavar="DIR|TARBALL",
        help="use this Buildroot tree or tarball instead of the pinned release (which is "
        "then not part of the mirror)",
    )


def run(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    variants = list(dict.fromkeys(args.kernel)) or list(board.kernels)
    for variant in variants:
        board.kernel(variant)
    checks.output_dir(args.output, "-o")
    if args.buildroot_src is not None:
        checks.existing(args.buildroot_src, "--buildroot-src", "Buildroot tree or release tarball")
    result = mirror_export.export(
        board,
        variants,
        args.output,
        buildroot_src=args.buildroot_src,
        mirror_urls=args.mirror,
        offline=args.offline,
    )
    print(
        f"mirror for {board.name} (kernels {', '.join(result.variants)}): {result.files} files, "
        f"{result.size / 1024**2:.0f} MiB in {result.out}"
    )
    print(f"check: (cd {result.out} && sha256sum -c --quiet SHA256SUMS)")
    print(
        f"build with it: fwgen build {board.argument} --mirror URL_OF_THAT_DIR --offline "
        "(http://... or file:///...)"
    )
    return 0
