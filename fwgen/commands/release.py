"""fwgen release: a verifiable, reproducible release bundle of a board's tested images."""

from __future__ import annotations

import argparse
from pathlib import Path

from fwgen import checks, release, release_verify
from fwgen.board import load_board
from fwgen.commands import add_board_argument, board_arg
from fwgen.commands.smoke import add_images_argument, images_dir_from_args
from fwgen.errors import FwgenError

NAME = "release"
HELP = "bundle tested images into a reproducible, verifiable release (or --verify one)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser, required=False)
    parser.add_argument(
        "--verify",
        type=Path,
        metavar="DIR|ARCHIVE",
        help="check a received release (checksums, manifest, images, bmap) instead",
    )
    parser.add_argument(
        "--kernel", metavar="VARIANT", help="kernel variant (default: the board's default)"
    )
    add_images_argument(parser)
    parser.add_argument(
        "--version", dest="release_version", metavar="V", help="default: git describe of fwgen"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("dist"), metavar="DIR", help="default: ./dist"
    )
    parser.add_argument(
        "--allow-untested",
        action="store_true",
        help="release images without a passing fwgen smoke run (recorded in the manifest)",
    )
    parser.add_argument(
        "--spdx-schema",
        type=Path,
        metavar="FILE",
        help="CycloneDX's spdx.schema.json, for Buildroot's SBOM generator offline",
    )


def run(args: argparse.Namespace) -> int:
    board_name = board_arg(args)
    if args.verify is not None:
        if board_name:
            raise FwgenError("--verify takes a release, not a board", "drop the board name")
        problems = release_verify.verify_release(args.verify)
        if problems:
            raise FwgenError(
                f"{args.verify} does not verify:\n  " + "\n  ".join(problems),
                "re-download or rebuild the release; do not flash these files",
            )
        untested = release_verify.tested_state(release_verify.release_record(args.verify))
        if untested:
            print(
                f"{args.verify}: checksums, manifest, images and bmap agree, but the images "
                f"are UNTESTED ({untested})"
            )
        else:
            print(
                f"{args.verify}: OK (checksums, manifest, images and bmap agree; the images "
                "passed fwgen smoke)"
            )
        return 0
    if not board_name:
        raise FwgenError(
            "give a board to release, or --verify DIR|ARCHIVE",
            "fwgen release BOARD --version V (or --board FILE), or fwgen release --verify DIR",
        )
    board = load_board(board_name)
    board.kernel(args.kernel)
    checks.output_dir(args.out, "--out")
    if args.release_version is not None:
        release.check_version(args.release_version)
    directory = images_dir_from_args(args, board)
    if not directory.is_dir():
        raise FwgenError(
            f"no images directory at {directory}",
            f"build and smoke first (fwgen build {board.argument}; fwgen smoke {board.argument}), "
            "or pass --images DIR",
        )
    if args.spdx_schema is not None:
        checks.existing(args.spdx_schema, "--spdx-schema", "CycloneDX spdx.schema.json file")
    made = release.make_release(
        board,
        directory,
        args.out,
        version=args.release_version,
        allow_untested=args.allow_untested,
        spdx_schema=args.spdx_schema,
    )
    if not made.tested:
        print("WARNING: released untested images (--allow-untested; recorded in the manifest)")
    print(f"release: {made.directory}")
    print(f"archive: {made.archive}")
    return 0
