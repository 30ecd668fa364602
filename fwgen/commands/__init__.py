"""One module per subcommand; the helpers here are shared by several of them."""

from __future__ import annotations

import argparse

from fwgen.board import Board, load_board, recipe_file
from fwgen.errors import FwgenError

BOARD_HELP = (
    "a board name (see 'fwgen boards'; $FWGEN_BOARD_PATH adds folders of boards) or the path "
    "of a board.toml"
)


def add_board_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """BOARD (a name or a recipe path) or, equivalently, --board FILE."""
    parser.add_argument("board", metavar="BOARD", nargs="?", help=BOARD_HELP)
    parser.add_argument(
        "--board",
        dest="board_file",
        metavar="FILE",
        help="a board recipe (board.toml, or a folder holding one) instead of BOARD"
        + ("" if required else "; optional"),
    )
    parser.set_defaults(board_required=required)


def board_arg(args: argparse.Namespace) -> str | None:
    """The board the user named: a name, or the absolute path of a recipe file; None when the
    command takes no board and none was given. FwgenError for both or (if needed) neither."""
    name, file = getattr(args, "board", None), getattr(args, "board_file", None)
    if name and file:
        raise FwgenError(
            f"two boards given: {name} and --board {file}",
            "give the board once: a name or path as BOARD, or --board FILE",
        )
    if file:
        return str(recipe_file(file))
    if name:
        return name
    if getattr(args, "board_required", True):
        raise _no_board(args)
    return None


def _no_board(args: argparse.Namespace) -> FwgenError:
    command = " ".join(
        word for word in (getattr(args, "command", ""), getattr(args, "patch_action", "")) if word
    )
    return FwgenError(
        "no board given",
        f"name one (fwgen boards lists them): fwgen {command} BOARD ..., or give a recipe: "
        f"fwgen {command} --board FILE ...",
    )


def board_from_args(args: argparse.Namespace) -> Board:
    """The board the arguments name, loaded (FwgenError when none is named)."""
    name = board_arg(args)
    if name is None:
        raise _no_board(args)
    return load_board(name)
