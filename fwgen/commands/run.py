"""fwgen run: boot a board's images in QEMU on this terminal, interactively."""

from __future__ import annotations

import argparse

from fwgen import qemu
from fwgen.commands.smoke import add_image_arguments, images_from_args
from fwgen.errors import FwgenError

NAME = "run"
HELP = "boot the images in QEMU with the board's machine arguments, on this terminal"


def configure(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    board, images = images_from_args(args)
    qemu.qemu_binary(board)
    with qemu.prepared_root(images) as sd_copy:
        argv = qemu.command_line(board, images, sd_copy, smoke=False)
        print(f"fwgen: {' '.join(argv)}")
        if images.root == "sd":
            print("fwgen: the SD card is a temporary copy; changes are discarded on exit")
        print("fwgen: quit with Ctrl-A x", flush=True)
        status = qemu.run_interactive(argv)
    if status != 0:
        # QEMU's own status is not fwgen's: 1 would read as an fwgen bug.
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        raise FwgenError(
            f"QEMU {how} (its own message is above)",
            f"check the images and QEMU's arguments; fwgen smoke {board.argument} --images "
            f"{images.directory} says what goes wrong at boot",
        )
    return 0
