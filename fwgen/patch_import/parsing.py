"""Parsing a block leniently: file headers, hunks and hunk lines, each repair recorded."""

from __future__ import annotations

import re
from collections.abc import Callable

from fwgen.patch_import.diff import Block, FileDiff, Hunk, HunkLine, Line, Refused
from fwgen.patches import diff_header_name

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_KEPT_HEADERS = ("new file mode ", "deleted file mode ", "old mode ", "new mode ")
_UNSUPPORTED_HEADERS = (
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "GIT binary patch",
    "Binary files ",
)


def is_file_start(lines: list[Line], k: int) -> bool:
    text = lines[k].text
    if text.startswith("diff "):
        return True
    return (
        text.startswith("--- ")
        and k + 2 < len(lines)
        and lines[k + 1].text.startswith("+++ ")
        and bool(_HUNK_RE.match(lines[k + 2].text))
    )


def _is_body_line(text: str) -> bool:
    return text[:1] in (" ", "+", "-", "\\")


def parse_block(
    block: Block, repairs: list[str], resolve: Callable[[FileDiff], None], strict: bool
) -> list[FileDiff]:
    """The files and hunks of a block. `strict` (no kernel tree to check against): hunk
    counts must match the hunk's lines and every hunk line must have its diff prefix;
    nothing is recounted or guessed."""
    lines = block.lines
    files: list[FileDiff] = []
    k = 0
    while k < len(lines):
        if not is_file_start(lines, k):
            k += 1
            continue
        fd, k = _parse_file_header(lines, k)
        resolve(fd)
        if k >= len(lines) or not _HUNK_RE.match(lines[k].text):
            raise Refused(fd.no, f"{fd.label()}: no hunk (@@ line) after the file header")
        while k < len(lines) and _HUNK_RE.match(lines[k].text):
            end = k + 1
            while end < len(lines) and not (
                _HUNK_RE.match(lines[end].text) or is_file_start(lines, end)
            ):
                end += 1
            hunk = _parse_hunk(fd, lines[k], lines[k + 1 : end], repairs, block.fenced, strict)
            fd.hunks.append(hunk)
            k = end
        files.append(fd)
    if not files:
        raise Refused(
            block.lines[0].no if block.lines else 1,
            f"{block.origin}: no file header (--- and +++ lines) in it",
        )
    return files


def _parse_file_header(lines: list[Line], k: int) -> tuple[FileDiff, int]:
    start = lines[k].no
    extra: list[str] = []
    if lines[k].text.startswith("diff "):
        k += 1
        while k < len(lines) and not lines[k].text.startswith(("--- ", "diff ", "@@ ")):
            text = lines[k].text
            if text.startswith(_UNSUPPORTED_HEADERS):
                raise Refused(
                    lines[k].no, f"'{text}': renames, copies and binary patches are not supported"
                )
            if text.startswith(_KEPT_HEADERS):
                extra.append(text)
            k += 1
        if not (
            k + 1 < len(lines)
            and lines[k].text.startswith("--- ")
            and lines[k + 1].text.startswith("+++ ")
        ):
            raise Refused(
                start,
                "a diff header without --- and +++ lines after it "
                "(mode-only and empty-file changes are not supported)",
            )
    old = diff_header_name(lines[k].text[4:])
    new = diff_header_name(lines[k + 1].text[4:])
    fd = FileDiff(
        start,
        None if old == "/dev/null" else old,
        None if new == "/dev/null" else new,
        extra,
    )
    if fd.old_name is None and fd.new_name is None:
        raise Refused(start, "both file names are /dev/null")
    return fd, k + 2


def _parse_hunk(
    fd: FileDiff,
    header: Line,
    body: list[Line],
    repairs: list[str],
    fenced: bool,
    strict: bool = False,
) -> Hunk:
    m = _HUNK_RE.match(header.text)
    assert m is not None
    old_start, new_start = int(m.group(1)), int(m.group(3))
    old_count = int(m.group(2)) if m.group(2) is not None else 1
    new_count = int(m.group(4)) if m.group(4) is not None else 1
    index = len(fd.hunks) + 1
    core = _core_length(body, fenced)
    taken = _declared_extent(body, core, old_count, new_count, fenced)
    if taken is None:
        taken = core
    hunk = Hunk(
        header.no,
        index,
        old_start,
        (old_start, old_count, new_start, new_count),
        m.group(5),
        _hunk_lines(fd, index, body[:taken], repairs, strict),
    )
    counts = (len(hunk.old()), len(hunk.new()))
    if strict and counts != (old_count, new_count):
        short = counts[0] < old_count or counts[1] < new_count
        raise Refused(
            header.no,
            f"{fd.label()} hunk {index}: its header says {old_count} old and {new_count} new "
            f"lines, but it has {counts[0]} and {counts[1]}: "
            + ("cut short, or " if short else "")
            + "miscounted, which the patch alone cannot tell; give --kernel-src to check the "
            "hunk against the kernel it is for",
        )
    if not any(x.kind in "+-" for x in hunk.lines):
        raise Refused(header.no, f"{fd.label()} hunk {index}: no added or removed line")
    if old_count and not hunk.old():
        raise Refused(header.no, f"{fd.label()} hunk {index}: all of its lines were lost")
    return hunk


def _core_length(body: list[Line], fenced: bool) -> int:
    """Where the hunk's text ends.

    Trailing blank lines are separators, and so is a format-patch signature ("-- " then the
    git version). In a plain patch file, other text after the last diff line is mail or prose;
    inside a fenced block there is no prose, so such lines are context lines that lost their
    leading space.
    """
    end = len(body)
    while end and body[end - 1].text == "":
        end -= 1
    last = end - 1
    while last >= 0 and not _is_body_line(body[last].text):
        last -= 1
    if last >= 0 and body[last].text == "-- " and last < end - 1:
        return last
    return end if fenced else last + 1


def _declared_extent(body: list[Line], core: int, old: int, new: int, fenced: bool) -> int | None:
    """How many lines the header's counts take, if they fit the body; None if they do not."""
    o = n = i = 0
    while o < old or n < new:
        if i >= len(body):
            return None
        text = body[i].text
        if text == "" or text.startswith(" "):
            o, n = o + 1, n + 1
        elif text.startswith("-"):
            o += 1
        elif text.startswith("+"):
            n += 1
        elif not text.startswith("\\"):
            if i >= core:
                return None  # text after the hunk, not a context line
            o, n = o + 1, n + 1
        i += 1
        if o > old or n > new:
            return None
    if i < len(body) and body[i].text.startswith("\\"):
        i += 1
    rest = [x.text for x in body[i:core] if x.text]
    if not rest:
        return i
    if fenced or (_is_body_line(rest[0]) and rest[0] != "-- "):
        return None  # more hunk lines follow: the counts are wrong
    return i  # mail text or prose after the hunk


def _hunk_lines(
    fd: FileDiff, index: int, body: list[Line], repairs: list[str], strict: bool = False
) -> list[HunkLine]:
    out: list[HunkLine] = []
    where = f"{fd.label()} hunk {index}"
    for line in body:
        text = line.text
        if text.startswith("\\"):
            if not out:
                raise Refused(line.no, f"{where}: '\\ No newline' without a line before it")
            out[-1].eol = False
        elif text[:1] in (" ", "+", "-"):
            out.append(HunkLine(text[0], text[1:], line.no))
        elif text == "":
            # GNU patch reads an empty line in a hunk as an empty context line too; the
            # header's counts confirm it (strict) or the tree does.
            repairs.append(f"{where}, line {line.no}: blank context line without its space")
            out.append(HunkLine(" ", "", line.no))
        elif strict:
            raise Refused(
                line.no,
                f"{where}: {text.strip()!r} has no diff prefix (' ', '+' or '-'): a context line "
                "that lost its leading space, or text that is not part of the patch, which the "
                "patch alone cannot tell; give --kernel-src to check it against the kernel",
            )
        else:
            repairs.append(f"{where}, line {line.no}: context line without its leading space")
            out.append(HunkLine(" ", text, line.no))
    return out
