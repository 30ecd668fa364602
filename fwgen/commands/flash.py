"""fwgen flash: write a board's sdcard.img to an SD card (or a file), safely."""

from __future__ import annotations

import argparse
from pathlib import Path

from fwgen import flash
from fwgen.commands import board_from_args
from fwgen.commands.smoke import add_image_arguments
from fwgen.errors import FwgenError
from fwgen.qemu import default_images_dir

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
    directory = args.images or default_images_dir(board.name, args.kernel or board.default_kernel)
    image = directory / flash.IMAGE
    if not image.is_file():
        raise FwgenError(
            f"no {flash.IMAGE} in {directory}: only a Buildroot build makes an SD card image",
            f"build it: fwgen build {board.name} (not --kernel-only), or pass --images DIR",
        )
    bmap = directory / flash.BMAP
    if not bmap.is_file():
        print(f"no {bmap.name}: writing every byte, then reading it back")
    result = flash.flash(
        image,
        args.device,
        bmap=bmap if bmap.is_file() else None,
        verify=not args.no_verify,
        yes=args.yes,
        force=args.force,
    )
    print(result.summary(), flush=True)
    return 0
