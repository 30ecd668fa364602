"""fwgen boards: the boards fwgen knows, with their kernel variants and pins."""

from __future__ import annotations

import argparse
import json
import sys

from fwgen import paths
from fwgen.board import Board, load_board_file, recipe_files
from fwgen.errors import FwgenError

NAME = "boards"
HELP = (
    "list the boards (fwgen's own and those in $FWGEN_BOARD_PATH), their kernel variants, "
    "Buildroot version and pinned sources"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe(board: Board) -> dict:
    def pin(d) -> dict:
        return {"file": d.file, "sha256": d.sha256, "urls": list(d.urls)}

    return {
        "name": board.name,
        "recipe": _shown(board),
        "description": board.description,
        "arch": board.arch,
        "buildroot": {"version": board.buildroot.version, **pin(board.buildroot)},
        "default_kernel": board.default_kernel,
        "kernels": {
            variant: {
                "version": k.version,
                "default": variant == board.default_kernel,
                "description": k.description,
                "defconfig": k.defconfig,
                "device_tree": k.device_tree,
                "patches": k.patches,
                "requirements": list(k.requirements),
                **pin(k),
            }
            for variant, k in board.kernels.items()
        },
        "qemu": {"machine": board.qemu.machine, "memory": board.qemu.memory},
    }


def _builtin(board: Board) -> bool:
    return board.source.resolve().is_relative_to(paths.boards_dir().resolve())


def _shown(board: Board) -> str:
    """fwgen's own recipes relative to fwgen's data (no host path), others as found."""
    if _builtin(board):
        return board.source.resolve().relative_to(paths.data_root().resolve()).as_posix()
    return str(board.source)


def run(args: argparse.Namespace) -> int:
    boards: list[Board] = []
    broken: list[FwgenError] = []
    for _, recipe in recipe_files():
        try:
            boards.append(load_board_file(recipe))
        except FwgenError as e:
            broken.append(e)
    if args.json:
        print(json.dumps([describe(b) for b in boards], indent=2))
    else:
        for board in boards:
            print(f"{board.name}: {board.description}")
            if not _builtin(board):
                print(f"  recipe {board.source}")
            br = board.buildroot
            print(f"  buildroot {br.version:<10} {br.file}  sha256 {br.sha256}")
            for variant, k in board.kernels.items():
                tag = " (default)" if variant == board.default_kernel else ""
                print(f"  kernel {variant:<4} {k.version:<10} {k.file}  sha256 {k.sha256}{tag}")
                if k.description:
                    print(f"    {k.description}")
    sys.stdout.flush()
    for error in broken:
        print(f"fwgen: error: {error}", file=sys.stderr)
    if broken:
        count = f"{len(broken)} board recipe{'s' if len(broken) > 1 else ''}"
        print(f"fwgen: {count} could not be loaded (listed above)", file=sys.stderr)
        return 2
    return 0
