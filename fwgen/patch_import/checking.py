"""Checking the result with GNU patch: against the touched files of a kernel tree, or
against stand-in files made of the hunks' own lines."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from fwgen import kconfig
from fwgen.errors import FwgenError
from fwgen.patch_import.diff import FileDiff, Refused
from fwgen.patch_import.fitting import apply_hunks
from fwgen.patches import run_patch


def read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "surrogateescape").splitlines(keepends=True)


def fit_to_tree(
    files: list[FileDiff], tree: Path, repairs: list[str], tree_name: str
) -> dict[str, list[str] | None]:
    """Every touched file's expected content after the patch (None: deleted)."""
    state: dict[str, list[str] | None] = {}
    for fd in files:
        if fd.path in state:
            current = state[fd.path]
        elif fd.old_name is None:
            current = None if not (tree / fd.path).exists() else read_lines(tree / fd.path)
        else:
            current = read_lines(tree / fd.path) if (tree / fd.path).is_file() else None
        if fd.old_name is None and current is not None:
            raise Refused(fd.no, f"{fd.path} is created by the patch but exists in {tree_name}")
        if fd.old_name is not None and current is None:
            raise Refused(fd.no, f"{fd.path} is not in {tree_name}")
        result = apply_hunks(fd, current or [], repairs, tree_name)
        state[fd.path] = None if fd.new_name is None else result
    return state


def synthetic_files(files: list[FileDiff]) -> dict[str, list[str]]:
    """Stand-in old files made of each hunk's old lines at its own line numbers."""
    before: dict[str, list[str]] = {}
    for fd in files:
        if fd.path in before:
            raise Refused(fd.no, f"{fd.path} appears twice; give --kernel-src to check it")
        if fd.old_name is None:
            continue
        lines: list[str] = []
        for h in fd.hunks:
            start = h.old_start - 1 if h.old() else h.old_start
            if start < len(lines):
                raise Refused(h.no, f"{fd.path} hunk {h.index}: overlaps the hunk before it")
            lines += [f"fwgen filler {fd.path}:{i + 1}\n" for i in range(len(lines), start)]
            lines += h.old()
        before[fd.path] = lines
    return before


def verify(
    patch_text: str,
    files: list[FileDiff],
    originals: dict[str, list[str]],
    expected: dict[str, list[str] | None],
) -> str:
    """Apply the patch with GNU patch to `originals`; return its output if all is as expected."""
    with tempfile.TemporaryDirectory(prefix="fwgen-patch-import-") as scratch:
        work = Path(scratch) / "tree"
        work.mkdir()
        for rel, lines in originals.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
        patch_file = Path(scratch) / "import.patch"
        patch_file.write_bytes(patch_text.encode("utf-8", "surrogateescape"))
        result = run_patch(work, patch_file)
        first = files[0].hunks[0].no
        if not result.ok:
            raise Refused(
                first,
                "the repaired patch does not apply with patch -p1 -F0:\n"
                + textwrap.indent(result.details(), "    "),
            )
        for rel, want in expected.items():
            path = work / rel
            got = read_lines(path) if path.is_file() else None
            if want is None and got == []:
                got = None
            if got != want:
                raise Refused(
                    first,
                    f"internal check failed: GNU patch's result for {rel} "
                    "differs from the hunks' effect (an fwgen bug; please report)",
                )
        return result.output


def kernel_tree_name(tree: Path) -> str:
    try:
        return f"linux {kconfig.kernel_version(tree)}"
    except FwgenError:
        return "the kernel tree"
