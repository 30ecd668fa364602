"""fwgen boards: the boards fwgen knows, with their kernel variants and pins."""

from __future__ import annotations

import argparse
import json

from fwgen.board import Board, board_names, load_board

NAME = "boards"
HELP = "list the boards, their kernel variants, Buildroot version and pinned sources"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe(board: Board) -> dict:
    def pin(d) -> dict:
        return {"file": d.file, "sha256": d.sha256, "urls": list(d.urls)}

    return {
        "name": board.name,
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


def run(args: argparse.Namespace) -> int:
    boards = [load_board(name) for name in board_names()]
    if args.json:
        print(json.dumps([describe(b) for b in boards], indent=2))
        return 0
    for board in boards:
        print(f"{board.name}: {board.description}")
        br = board.buildroot
        print(f"  buildroot {br.version:<10} {br.file}  sha256 {br.sha256}")
        for variant, k in board.kernels.items():
            tag = " (default)" if variant == board.default_kernel else ""
            print(f"  kernel {variant:<4} {k.version:<10} {k.file}  sha256 {k.sha256}{tag}")
            if k.description:
                print(f"    {k.description}")
    return 0
