"""fwgen fetch: download and verify everything a board needs, into the shared cache."""

from __future__ import annotations

import argparse

from fwgen import sources
from fwgen.commands import add_board_argument, board_from_args

NAME = "fetch"
HELP = "download and verify (sha256) every source a board needs, into the cache"


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser)
    parser.add_argument(
        "--kernel", metavar="VARIANT", help="kernel variant (default: the board's default)"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="use only the cache, never the network (also FWGEN_OFFLINE=1)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="try URL/<file> before the upstream URLs; repeatable (also FWGEN_MIRROR)",
    )


def run(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    downloads = board.downloads(args.kernel)
    paths = sources.fetch(downloads, mirrors=args.mirror, offline=args.offline)
    # sha256sum's format, so the output can be checked with `sha256sum -c`.
    for download, path in zip(downloads, paths, strict=True):
        print(f"{download.sha256}  {path}")
    return 0
