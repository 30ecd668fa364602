"""Importing a document, start to end: its patches found, each block parsed, repaired,
checked and rendered; refusals turned into errors naming the document line."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from fwgen import __version__
from fwgen.errors import FwgenError
from fwgen.patch_import.checking import (
    fit_to_tree,
    kernel_tree_name,
    read_lines,
    synthetic_files,
    verify,
)
from fwgen.patch_import.diff import Block, Refused
from fwgen.patch_import.document import find_blocks
from fwgen.patch_import.file_names import resolve_path
from fwgen.patch_import.fitting import apply_hunks, fix_starts
from fwgen.patch_import.parsing import parse_block
from fwgen.patch_import.rendering import patch_message, render_diff, sanitized
from fwgen.patch_import.series import ImportedPatch, ImportedSeries
from fwgen.patches import existing_tree, hunk_offsets


def import_patch(
    source_file: Path, *, strip_hint: int | None = None, kernel_src: Path | None = None
) -> ImportedSeries:
    """Turn a patch, or each fenced ```patch/```diff block of a markdown document, into a
    -p1 patch that GNU patch applies without fuzz. Nothing is written (see ImportedSeries.write).

    Repairs, each recorded in the patch's message: file names rewritten to a/<path> b/<path>
    (the in-tree path is the longest suffix of the names that exists in `kernel_src`; without
    a tree, the names' common part without a leading linux* tree directory; with `strip_hint`
    N, the new name without its first N components, like patch -pN); empty context lines
    restored. With `kernel_src` only (the tree checks the result): hunk headers recounted
    from their bodies, leading-space-less context lines restored, context and removed lines
    whose whitespace differs from the tree taken from the tree when exactly one place in the
    file matches. Without a tree a count mismatch or a line without a diff prefix is refused:
    the patch alone cannot tell a miscount from a hunk cut short. A fenced block that is never
    closed is always refused. Added lines are the author's and never change.

    The result is then applied with GNU patch and Buildroot's flags: to a copy of the touched
    files of `kernel_src`, else to a synthetic file made of the hunks' own lines, and the
    outcome compared with the hunks' intended effect. FwgenError (naming the document line,
    file and hunk) when anything cannot be repaired unambiguously.
    """
    source_file = Path(source_file)
    try:
        raw = source_file.read_bytes()
    except OSError as e:
        raise FwgenError(f"{source_file}: cannot read: {e.strerror}") from None
    text = raw.decode("utf-8", "surrogateescape")
    notes: list[str] = []
    if "\r\n" in text and text.count("\r\n") == text.count("\n"):
        text = text.replace("\r\n", "\n")
        notes.append("CRLF line ends of the document turned into LF")
    try:
        blocks = find_blocks(text)
    except Refused as e:
        raise FwgenError(
            f"{source_file}:{e.line}: {e.what}", "nothing was written; fix the document"
        ) from None
    if not blocks:
        raise FwgenError(
            f"{source_file}: no patch found",
            "give a unified diff, or a markdown document with ```patch or ```diff blocks",
        )
    tree = existing_tree(kernel_src) if kernel_src is not None else None
    date = _date(source_file)
    patches = []
    for n, block in enumerate(blocks, 1):
        try:
            patches.append(
                _import_block(
                    source_file.name, block, n, len(blocks), strip_hint, tree, date, notes
                )
            )
        except Refused as e:
            raise FwgenError(
                f"{source_file}:{e.line}: {e.what}",
                "nothing was written; fix the document (or the tree given with --kernel-src)",
            ) from None
    return ImportedSeries(source_file, tuple(patches))


def _date(source_file: Path) -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = int(epoch) if epoch and epoch.isdigit() else int(source_file.stat().st_mtime)
    return datetime.fromtimestamp(stamp, UTC)


# ---- one block, start to end


def _import_block(
    document: str,
    block: Block,
    n: int,
    total: int,
    strip_hint: int | None,
    tree: Path | None,
    date: datetime,
    notes: list[str],
) -> ImportedPatch:
    repairs = list(notes)
    files = parse_block(
        block, repairs, lambda fd: resolve_path(fd, strip_hint, tree, repairs), tree is None
    )
    if tree is not None:
        tree_name = kernel_tree_name(tree)
        originals = {
            fd.path: read_lines(tree / fd.path)
            for fd in files
            if fd.old_name is not None and (tree / fd.path).is_file()
        }
        expected = fit_to_tree(files, tree, repairs, tree_name)
    else:
        originals = synthetic_files(files)
        expected = {}
        for fd in files:
            result = apply_hunks(fd, originals.get(fd.path, []), None, "")
            expected[fd.path] = None if fd.new_name is None else result
    fix_starts(files, repairs)
    subject = f"Import {document}" + (f" (block {n} of {total})" if total > 1 else "")
    diff = render_diff(files)
    output = verify(diff, files, originals, expected)
    if tree is not None:
        check = f"applies to {tree_name} with patch -p1 -F0 (as Buildroot applies it)"
        offsets = [f"{o.file} hunk #{o.hunk}: offset {o.offset:+d}" for o in hunk_offsets(output)]
        if offsets:
            check += "; " + ", ".join(offsets)
    else:
        check = (
            "well-formed for patch -p1 -F0; not checked against a kernel tree (give --kernel-src)"
        )
    if any(line.startswith("index ") for line in (x.text for x in block.lines)):
        repairs.append("index lines dropped (their blob ids were not checked)")
    message = patch_message(document, block.origin, subject, repairs, check, files, date)
    return ImportedPatch(
        name=f"{n:04d}-{sanitized(subject)}.patch",
        text=message + diff + f"-- \nfwgen {__version__}\n",
        origin=block.origin,
        files=tuple(dict.fromkeys(fd.path for fd in files)),
        hunks=sum(len(fd.hunks) for fd in files),
        repairs=tuple(repairs),
        check=check,
    )
