"""fwgen flash: write a board's sdcard.img to an SD card (or a file), safely."""

from __future__ import annotations

import argparse
from pathlib import Path

from fwgen import checks, flash, flash_target, images
from fwgen.commands import board_from_args
from fwgen.commands.smoke import add_image_arguments, images_dir_from_args
from fwgen.errors import FwgenError

NAME = "flash"
HELP = "write the SD card image to a card or a file (bmaptool with the .bmap; safety checks)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser)
    parser.add_argument(
        "--device",
        type=Path,
        required=True,
        metavar="PATH",
        help="the card's block device (/dev/sdX, /dev/mmcblkN, /dev/disk/by-id/...) or a file",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force", action="store_true", help="allow a disk that says it is not removable"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip checksum verification / read-back"
    )


def run(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    board.kernel(args.kernel)
    if args.images is not None:
        checks.existing(args.images, "--images", "images directory or release directory")
    directory = images_dir_from_args(args, board)
    layout = images.read_layout(directory) if directory.is_dir() else None
    card = layout.file(flash.IMAGE) if layout else None
    if layout is None or card is None or not card.path.is_file():
        raise FwgenError(
            f"no {flash.IMAGE} in {directory}: only a Buildroot build makes an SD card image",
            f"build it: fwgen build {board.argument} (not --kernel-only), or pass --images DIR "
            "(a build's images/ or a release directory)",
        )
    bmap = directory / flash.BMAP
    # Refuse a wrong target before spending time on the image.
    target = flash_target.inspect(args.device, flash_target.SystemView())
    inputs = [directory, card.path, *([bmap] if bmap.is_file() else [])]
    problems = flash_target.input_refusals(target, inputs)
    if problems:
        raise FwgenError(
            f"refusing to write {target.path}:\n  " + "\n  ".join(problems),
            "give the card's device (lsblk lists them) or a file outside the images "
            "directory; nothing was written",
        )
    print(f"checking {card.path.name} against {images.SUMS} and {images.MANIFEST}", flush=True)
    checked = images.check_image(layout, flash.IMAGE)
    if bmap.is_file():
        images.check_listed(layout, bmap)
    else:
        print(f"no {bmap.name}: writing every byte")
    result = flash.flash(
        card.path,
        args.device,
        bmap=bmap if bmap.is_file() else None,
        verify=not args.no_verify,
        yes=args.yes,
        force=args.force,
        expected=flash.Expected(checked.sha256, checked.size, checked.against),
        inputs=inputs,
    )
    print(result.summary(), flush=True)
    return 0
