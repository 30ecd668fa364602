"""fwgen smoke: boot a board's images in QEMU and run the recipe's checks on its console."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from fwgen import checks, layout, qemu, smoke, smoke_report
from fwgen.board import Board
from fwgen.commands import add_board_argument, board_from_args
from fwgen.errors import FwgenError

NAME = "smoke"
HELP = "boot the images in QEMU and run the board's smoke checks (exit 0 only if all pass)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser)
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    parser.add_argument(
        "--timeout-multiplier",
        type=float,
        metavar="X",
        default=None,
        help="scale every step's deadline, for slow or loaded hosts "
        "(default: $FWGEN_TIMEOUT_MULTIPLIER, else 1)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="run every check even after one fails"
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="where the console log, QEMU's stderr and result.json go (default: IMAGES-smoke "
        "next to the images; a new directory under $TMPDIR when that cannot be written)",
    )


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser)
    parser.add_argument(
        "--kernel", metavar="VARIANT", help="kernel variant (default: the board's default)"
    )
    add_images_argument(parser)


def add_images_argument(parser: argparse.ArgumentParser) -> None:
    """--images DIR, or the build found under -o DIR (where `fwgen build -o DIR` built)."""
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="a build's images directory or a release directory (default: the newer of "
        "OUTPUT/BOARD-VARIANT/images and OUTPUT/BOARD-VARIANT-kernel/images)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=layout.DEFAULT_ROOT,
        metavar="OUTPUT",
        help="where the builds live, as given to fwgen build -o (default: ./build)",
    )


def images_dir_from_args(args: argparse.Namespace, board: Board) -> Path:
    """--images, else the newer build of the board and variant under -o."""
    if args.images is not None:
        return args.images
    return layout.images_dir(args.output, board.name, args.kernel or board.default_kernel)


def images_from_args(args: argparse.Namespace) -> tuple[Board, qemu.Images]:
    board = board_from_args(args)
    board.kernel(args.kernel)  # an unknown variant is an error before anything else
    return board, qemu.find_images(board, images_dir_from_args(args, board), args.kernel)


MAX_MULTIPLIER = 100.0


def multiplier(value: float | None) -> float:
    """--timeout-multiplier, else $FWGEN_TIMEOUT_MULTIPLIER, else 1: a number in (0, 100]."""
    where = "--timeout-multiplier"
    if value is None:
        text = os.environ.get("FWGEN_TIMEOUT_MULTIPLIER", "1")
        where = "FWGEN_TIMEOUT_MULTIPLIER"
        try:
            value = float(text)
        except ValueError:
            raise FwgenError(
                f"FWGEN_TIMEOUT_MULTIPLIER={text!r} is not a number",
                "set it to a number such as 2, or unset it (unset FWGEN_TIMEOUT_MULTIPLIER)",
            ) from None
    if not (math.isfinite(value) and 0 < value <= MAX_MULTIPLIER):
        raise FwgenError(
            f"{where} {value}: the timeout multiplier must be a number greater than 0 and at "
            f"most {MAX_MULTIPLIER:g}",
            "use e.g. --timeout-multiplier 3 (or FWGEN_TIMEOUT_MULTIPLIER=3) for a slow or "
            "loaded host",
        )
    return value


def run(args: argparse.Namespace) -> int:
    scale = multiplier(args.timeout_multiplier)
    if args.junit is not None:
        checks.output_file(args.junit, "--junit")
    if args.results is not None:
        checks.output_dir(args.results, "--results")
    board, images = images_from_args(args)
    results, note = smoke.results_dir(images.directory, args.results)
    print(
        f"smoke {board.name}, kernel {images.variant}, {images.root} root "
        f"({images.rootfs.name}), images {images.directory}",
        flush=True,
    )
    if note:
        print(f"note: {note}", flush=True)
    width = smoke_report.name_width(board.smoke)
    report = smoke.run(
        board,
        images,
        multiplier=scale,
        keep_going=args.keep_going,
        log_dir=results,
        on_result=lambda r: print(smoke_report.format_result(r, width), flush=True),
    )
    if args.junit:
        smoke_report.write_junit(report, args.junit)
    print(smoke_report.format_summary(report))
    if args.junit:
        print(f"junit: {args.junit}")
    sys.stdout.flush()
    return 0 if report.passed else 2
