"""fwgen patch: check a board's kernel patch series, or import a patch from a document."""

from __future__ import annotations

import argparse
from pathlib import Path

from fwgen import checks, paths
from fwgen.commands import add_board_argument, board_from_args
from fwgen.errors import FwgenError
from fwgen.patch_import import import_patch
from fwgen.patches import check_series, format_results, series

NAME = "patch"
HELP = "check a board's kernel patch series, or import a patch published in a document"

_CHECK_HELP = (
    "apply the board's kernel patch series to a scratch copy of the files it touches, in "
    "Buildroot's order and with its flags (patch -p1 -F0), and report each patch"
)
_IMPORT_HELP = (
    "turn a patch, or the ```patch/```diff blocks of a markdown document, into -p1 patch "
    "files that apply without fuzz: file names rewritten, hunk headers recounted, "
    "whitespace damage repaired where unambiguous; refuses (writing nothing) otherwise"
)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="patch_action", metavar="ACTION", required=True)

    check = actions.add_parser("check", help=_CHECK_HELP, description=_CHECK_HELP)
    add_board_argument(check)
    check.add_argument("--kernel", metavar="V", help="kernel variant (default: the board's)")
    check.add_argument(
        "--kernel-src",
        metavar="DIR|TARBALL",
        required=True,
        help="the pristine kernel source the series is for: a tree or its release tarball",
    )
    check.set_defaults(patch_run=run_check)

    imp = actions.add_parser("import", help=_IMPORT_HELP, description=_IMPORT_HELP)
    imp.add_argument("file", type=Path, help="a patch, or a markdown document with patches")
    imp.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=Path,
        default=Path("."),
        help="where to write the patch files (default: the current directory)",
    )
    imp.add_argument(
        "--kernel-src",
        metavar="DIR|TARBALL",
        help="check the result against this kernel source (and repair whitespace from it)",
    )
    imp.add_argument(
        "-p",
        "--strip",
        metavar="N",
        type=int,
        help="the in-tree path is the new file name without its first N components "
        "('.' components do not count), instead of fwgen's guess",
    )
    imp.set_defaults(patch_run=run_import)


def run(args: argparse.Namespace) -> int:
    return int(args.patch_run(args))


def _kernel_tree(arg: str) -> Path:
    try:
        from fwgen.kernelsrc import kernel_source
    except ModuleNotFoundError as e:  # until fwgen.kernelsrc exists: trees only
        if e.name != "fwgen.kernelsrc":
            raise
        path = Path(arg).expanduser()
        if not path.is_dir():
            raise FwgenError(f"{arg}: not a kernel source directory") from None
        return path
    return kernel_source(arg)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 'es' if noun.endswith('ch') else 's'}"


def _shown(path: Path) -> str:
    return paths.shown(path)


def run_check(args: argparse.Namespace) -> int:
    board = board_from_args(args)
    kernel = board.kernel(args.kernel)
    patch_dir = kernel.patches_dir()
    patches = series(patch_dir)
    if not patches:
        print(f"{board.name} kernel {kernel.version}: no patches in {_shown(patch_dir)}")
        return 0
    tree = _kernel_tree(args.kernel_src)
    print(
        f"{board.name} kernel {kernel.version}: {_count(len(patches), 'patch')} from "
        f"{_shown(patch_dir)}, applied in order with patch -p1 -F0 to a copy of {tree}"
    )
    results = check_series(tree, patch_dir)
    print(format_results(results, patch_dir))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise FwgenError(
            f"{failed[0].patch.name} does not apply to {tree} "
            f"({sum(r.ok for r in results)} of {len(results)} applied before it)",
            "fix the patch (see the rejected hunk above) or give the pristine kernel "
            f"{kernel.version} source; Buildroot applies patches without fuzz",
        )
    print(f"{_count(len(results), 'patch')}: all apply")
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.strip is not None and args.strip < 0:
        raise FwgenError("--strip must be 0 or more", "give --strip 0 or more, or leave it out")
    checks.existing(args.file, "patch import", "patch or markdown document")
    checks.output_dir(args.output, "-o")
    tree = _kernel_tree(args.kernel_src) if args.kernel_src else None
    imported = import_patch(args.file, strip_hint=args.strip, kernel_src=tree)
    print(f"{args.file}: {_count(len(imported.patches), 'patch')} found")
    for patch in imported.patches:
        print(f"  {patch.origin}: {len(patch.files)} files, {patch.hunks} hunks")
        print(f"    files: {', '.join(patch.files)}")
        for item in patch.repairs:
            print(f"    repaired: {item}")
        print(f"    checked: {patch.check}")
    for written in imported.write(args.output):
        print(f"wrote {written}")
    return 0
