"""fwgen doctor: check the host for what each stage needs."""

from __future__ import annotations

import argparse
import sys

from fwgen import ccache, doctor
from fwgen.board import board_names, load_board
from fwgen.commands import add_board_argument, board_arg
from fwgen.errors import FwgenError

NAME = "doctor"
HELP = "check this host for what each stage needs and print the apt-get line for what is missing"


def configure(parser: argparse.ArgumentParser) -> None:
    add_board_argument(parser, required=False)
    parser.add_argument(
        "--stage",
        action="append",
        choices=list(doctor.STAGE_TITLES),
        help="check only this stage (repeatable; default: all)",
    )
    parser.add_argument(
        "--ccache-remote",
        metavar="URL",
        help=f"also check this shared compile cache answers (default: ${ccache.ENV_URL}); "
        "unreachable is a warning: builds go on with the local cache",
    )


def run(args: argparse.Namespace) -> int:
    chosen = board_arg(args)
    names = [chosen] if chosen else board_names()
    qemu = []
    for name in names:
        try:
            qemu.append(load_board(name).qemu.binary)
        except FwgenError as e:
            if chosen:
                raise
            print(f"note: board {name} skipped: {e.message} (see: fwgen boards)", file=sys.stderr)
    stages = args.stage or list(doctor.STAGE_TITLES)
    findings = doctor.check(stages, qemu)
    for stage in stages:
        print(f"{doctor.STAGE_TITLES[stage]}:")
        for f in (f for f in findings if f.stage == stage):
            mark = "ok     " if f.ok else "MISSING"
            extra = "" if f.ok else f"  [Debian package: {f.need.package}]"
            print(f"  {mark} {f.need.what:<32} {f.detail}{extra}")
        for what, note in doctor.stage_notes(stage):
            print(f"  note    {what:<32} {note}")
    remote = ccache.resolve(args.ccache_remote)
    if remote is not None:
        reachable, status = remote.status()
        print("Shared compile cache:")
        print(f"  {'ok     ' if reachable else 'WARNING'} {status}")
    line = doctor.install_line(findings)
    if line is None:
        print("Everything fwgen needs is here.")
        return 0
    missing = sorted({f.stage for f in findings if not f.ok})
    print(f"\nMissing for: {', '.join(missing)}. Install with (as root):\n  {line}")
    return 2
