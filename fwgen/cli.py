"""Command line: `fwgen <subcommand>`; one module per subcommand under fwgen.commands."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import traceback
from collections.abc import Sequence

from fwgen import __version__
from fwgen import log as logsetup
from fwgen.errors import FwgenError

# Each module has NAME, HELP, configure(parser) and run(args) -> int.
COMMANDS = [
    "fwgen.commands.boards",
    "fwgen.commands.build",
    "fwgen.commands.config",
    "fwgen.commands.fetch",
    "fwgen.commands.mirror",
    "fwgen.commands.doctor",
    "fwgen.commands.patch",
    "fwgen.commands.smoke",
    "fwgen.commands.run",
    "fwgen.commands.flash",
    "fwgen.commands.release",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwgen",
        description="Bootable, verified ARM firmware from one board recipe.",
    )
    parser.add_argument("--version", action="version", version=f"fwgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose output, tracebacks")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(name)
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logsetup.configure(debug=args.debug, quiet=args.quiet)
    try:
        return int(args.run(args) or 0)
    except FwgenError as e:
        if args.debug:
            traceback.print_exc()
        print(f"fwgen: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("fwgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        if e.errno in _PLACE_ERRORS and e.filename:
            # The host said no to a path the user chose (read-only, no permission, full).
            if args.debug:
                traceback.print_exc()
            print(
                f"fwgen: error: cannot write {e.filename}: {e.strerror}\n"
                "  fix: choose a place you can write (the command's -o/--out/--results "
                "option), or make room there",
                file=sys.stderr,
            )
            return 2
        return _internal(e, args.debug)
    except Exception as e:  # an fwgen bug, not a user error
        return _internal(e, args.debug)


# Errors about where files go, not about fwgen: exit 2 with the path.
_PLACE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _internal(e: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(
        f"fwgen: internal error: {type(e).__name__}: {e}\n"
        "  run again with --debug for the traceback, and report it",
        file=sys.stderr,
    )
    return 1
