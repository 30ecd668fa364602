"""Import a patch published in a document into a patch Buildroot applies, or refuse.

A patch that went through a web page or a mail client arrives damaged: wrong path prefixes,
hunk counts that do not match their bodies, whitespace changed in context lines. This module
finds the patches (plain, or fenced in markdown), repairs only what is unambiguous (paths,
counts, context whitespace that exactly one place in the tree explains), and checks that the
result applies with the flags Buildroot uses; otherwise it refuses, naming file, hunk and line.
"""

from __future__ import annotations

import email.utils
import os
import re
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fwgen import __version__, fsutil, kconfig
from fwgen.errors import FwgenError
from fwgen.patches import diff_header_name, existing_tree, hunk_offsets, run_patch


@dataclass(frozen=True)
class ImportedPatch:
    """One fenced patch block (or a whole plain patch), made into a -p1 patch file."""

    name: str  # file name, format-patch style: 0001-Import-<document>.patch
    text: str
    origin: str  # where in the document it came from
    files: tuple[str, ...]
    hunks: int
    repairs: tuple[str, ...]
    check: str  # what was checked, in words


@dataclass(frozen=True)
class ImportedSeries:
    source: Path
    patches: tuple[ImportedPatch, ...]

    def write(self, out_dir: Path) -> list[Path]:
        """Write every patch into `out_dir`; each file appears whole or not at all."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[Path, Path]] = []
        try:
            for patch in self.patches:
                final = out_dir / patch.name
                data = patch.text.encode("utf-8", "surrogateescape")
                staged.append((fsutil.write_temp(final, data, mode=0o644), final))
            for tmp, final in staged:
                os.replace(tmp, final)
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
        return [final for _, final in staged]


@dataclass
class _Line:
    no: int  # 1-based line number in the source document
    text: str


@dataclass
class _Block:
    origin: str
    lines: list[_Line]
    fenced: bool


@dataclass
class _HunkLine:
    kind: str  # " ", "-" or "+"
    text: str  # without the kind character and without a line end
    no: int
    eol: bool = True  # False: followed by "\ No newline at end of file"

    def full(self) -> str:
        return self.text + ("\n" if self.eol else "")


@dataclass
class _Hunk:
    no: int  # document line of the @@ header
    index: int  # 1-based, within its file
    old_start: int
    declared: tuple[int, int, int, int]
    section: str
    lines: list[_HunkLine]
    new_start: int = 0

    def old(self) -> list[str]:
        return [x.full() for x in self.lines if x.kind in " -"]

    def new(self) -> list[str]:
        return [x.full() for x in self.lines if x.kind in " +"]

    def header(self) -> str:
        return (
            f"@@ -{self.old_start},{len(self.old())} +{self.new_start},{len(self.new())} "
            f"@@{self.section}"
        )


@dataclass
class _FileDiff:
    no: int
    old_name: str | None  # None for /dev/null
    new_name: str | None
    extra: list[str]
    hunks: list[_Hunk] = field(default_factory=list)
    path: str = ""

    def label(self) -> str:
        return self.path or self.new_name or self.old_name or "?"


class _Refused(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_FENCE_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
_KEPT_HEADERS = ("new file mode ", "deleted file mode ", "old mode ", "new mode ")
_UNSUPPORTED_HEADERS = (
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "GIT binary patch",
    "Binary files ",
)
_TREE_NAME_RE = re.compile(r"^linux([-_.].*)?$")
_SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9_.,+@=-]+(/[A-Za-z0-9_.,+@=-]+)*$")


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
        blocks = _blocks(text)
    except _Refused as e:
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
        except _Refused as e:
            raise FwgenError(
                f"{source_file}:{e.line}: {e.what}",
                "nothing was written; fix the document (or the tree given with --kernel-src)",
            ) from None
    return ImportedSeries(source_file, tuple(patches))


def _date(source_file: Path) -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = int(epoch) if epoch and epoch.isdigit() else int(source_file.stat().st_mtime)
    return datetime.fromtimestamp(stamp, UTC)


# ---- finding the patches in a document


def _blocks(text: str) -> list[_Block]:
    lines = [_Line(i, t) for i, t in enumerate(text.split("\n"), 1)]
    if lines and lines[-1].text == "":
        lines.pop()
    fenced = list(_fenced_blocks(lines))
    if fenced:
        return fenced
    if any(_is_file_start(lines, k) for k in range(len(lines))):
        return [_Block("the whole file", lines, fenced=False)]
    return []


def _fenced_blocks(lines: list[_Line]) -> Iterator[_Block]:
    i = 0
    while i < len(lines):
        m = _FENCE_RE.match(lines[i].text)
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        content: list[_Line] = []
        while j < len(lines) and not _closes(lines[j].text, fence):
            content.append(_Line(lines[j].no, _dedent(lines[j].text, indent)))
            j += 1
        words = info.split()
        lang = words[0].lower() if words else ""
        if lang in ("patch", "diff") and j >= len(lines):
            # Running to the end of the document: it may well have been cut short there,
            # and a patch missing its end can still apply (without what is missing).
            raise _Refused(
                lines[i].no,
                f"the ```{lang} block that starts here is never closed: the document may be "
                f"cut short (add the closing {fence} if the patch is complete)",
            )
        if lang in ("patch", "diff"):
            yield _Block(f"```{lang} block at line {lines[i].no}", content, fenced=True)
        i = j + 1


def _closes(text: str, fence: str) -> bool:
    stripped = text.strip()
    return (
        len(stripped) >= len(fence)
        and set(stripped) == {fence[0]}
        and text.lstrip()[: len(fence)] == fence
    )


def _dedent(text: str, indent: str) -> str:
    if not indent or text.startswith(indent):
        return text[len(indent) :]
    if set(indent) == {" "}:
        return text[min(len(indent), len(text) - len(text.lstrip(" "))) :]
    return text


# ---- parsing a block leniently


def _is_file_start(lines: list[_Line], k: int) -> bool:
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


def _parse_block(
    block: _Block, repairs: list[str], resolve: Callable[[_FileDiff], None], strict: bool
) -> list[_FileDiff]:
    """The files and hunks of a block. `strict` (no kernel tree to check against): hunk
    counts must match the hunk's lines and every hunk line must have its diff prefix;
    nothing is recounted or guessed."""
    lines = block.lines
    files: list[_FileDiff] = []
    k = 0
    while k < len(lines):
        if not _is_file_start(lines, k):
            k += 1
            continue
        fd, k = _parse_file_header(lines, k)
        resolve(fd)
        if k >= len(lines) or not _HUNK_RE.match(lines[k].text):
            raise _Refused(fd.no, f"{fd.label()}: no hunk (@@ line) after the file header")
        while k < len(lines) and _HUNK_RE.match(lines[k].text):
            end = k + 1
            while end < len(lines) and not (
                _HUNK_RE.match(lines[end].text) or _is_file_start(lines, end)
            ):
                end += 1
            hunk = _parse_hunk(fd, lines[k], lines[k + 1 : end], repairs, block.fenced, strict)
            fd.hunks.append(hunk)
            k = end
        files.append(fd)
    if not files:
        raise _Refused(
            block.lines[0].no if block.lines else 1,
            f"{block.origin}: no file header (--- and +++ lines) in it",
        )
    return files


def _parse_file_header(lines: list[_Line], k: int) -> tuple[_FileDiff, int]:
    start = lines[k].no
    extra: list[str] = []
    if lines[k].text.startswith("diff "):
        k += 1
        while k < len(lines) and not lines[k].text.startswith(("--- ", "diff ", "@@ ")):
            text = lines[k].text
            if text.startswith(_UNSUPPORTED_HEADERS):
                raise _Refused(
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
            raise _Refused(
                start,
                "a diff header without --- and +++ lines after it "
                "(mode-only and empty-file changes are not supported)",
            )
    old = diff_header_name(lines[k].text[4:])
    new = diff_header_name(lines[k + 1].text[4:])
    fd = _FileDiff(
        start,
        None if old == "/dev/null" else old,
        None if new == "/dev/null" else new,
        extra,
    )
    if fd.old_name is None and fd.new_name is None:
        raise _Refused(start, "both file names are /dev/null")
    return fd, k + 2


def _parse_hunk(
    fd: _FileDiff,
    header: _Line,
    body: list[_Line],
    repairs: list[str],
    fenced: bool,
    strict: bool = False,
) -> _Hunk:
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
    hunk = _Hunk(
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
        raise _Refused(
            header.no,
            f"{fd.label()} hunk {index}: its header says {old_count} old and {new_count} new "
            f"lines, but it has {counts[0]} and {counts[1]}: "
            + ("cut short, or " if short else "")
            + "miscounted, which the patch alone cannot tell; give --kernel-src to check the "
            "hunk against the kernel it is for",
        )
    if not any(x.kind in "+-" for x in hunk.lines):
        raise _Refused(header.no, f"{fd.label()} hunk {index}: no added or removed line")
    if old_count and not hunk.old():
        raise _Refused(header.no, f"{fd.label()} hunk {index}: all of its lines were lost")
    return hunk


def _core_length(body: list[_Line], fenced: bool) -> int:
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


def _declared_extent(body: list[_Line], core: int, old: int, new: int, fenced: bool) -> int | None:
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
    fd: _FileDiff, index: int, body: list[_Line], repairs: list[str], strict: bool = False
) -> list[_HunkLine]:
    out: list[_HunkLine] = []
    where = f"{fd.label()} hunk {index}"
    for line in body:
        text = line.text
        if text.startswith("\\"):
            if not out:
                raise _Refused(line.no, f"{where}: '\\ No newline' without a line before it")
            out[-1].eol = False
        elif text[:1] in (" ", "+", "-"):
            out.append(_HunkLine(text[0], text[1:], line.no))
        elif text == "":
            # GNU patch reads an empty line in a hunk as an empty context line too; the
            # header's counts confirm it (strict) or the tree does.
            repairs.append(f"{where}, line {line.no}: blank context line without its space")
            out.append(_HunkLine(" ", "", line.no))
        elif strict:
            raise _Refused(
                line.no,
                f"{where}: {text.strip()!r} has no diff prefix (' ', '+' or '-'): a context line "
                "that lost its leading space, or text that is not part of the patch, which the "
                "patch alone cannot tell; give --kernel-src to check it against the kernel",
            )
        else:
            repairs.append(f"{where}, line {line.no}: context line without its leading space")
            out.append(_HunkLine(" ", text, line.no))
    return out


# ---- file names


def _resolve_path(
    fd: _FileDiff, strip_hint: int | None, tree: Path | None, repairs: list[str]
) -> None:
    fd.path = _in_tree_path(fd, strip_hint, tree)
    if not _SAFE_PATH_RE.match(fd.path) or ".." in fd.path.split("/"):
        raise _Refused(fd.no, f"'{fd.path}': not a plain relative path inside the tree")
    shown = ", ".join(n for n in (fd.old_name, fd.new_name) if n is not None)
    if not {fd.old_name, fd.new_name} - {None} <= {f"a/{fd.path}", f"b/{fd.path}"}:
        repairs.append(f"file names {shown} -> a/{fd.path} b/{fd.path}")


def _components(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _in_tree_path(fd: _FileDiff, strip_hint: int | None, tree: Path | None) -> str:
    old = _components(fd.old_name) if fd.old_name is not None else None
    new = _components(fd.new_name) if fd.new_name is not None else None
    if strip_hint is not None:
        return _stripped(fd, old, new, strip_hint)
    if old is not None and new is not None and old != new:
        common = _common_suffix(old, new)
        if not common:
            raise _Refused(
                fd.no,
                f"'{fd.old_name}' and '{fd.new_name}' share no path: renames are not "
                "supported (give --strip N if the names only differ in their prefixes)",
            )
    else:
        side = new if new is not None else old
        assert side is not None
        common = side[1:]  # the -p1 convention: a/, b/ or the tree's directory
    if tree is not None and fd.old_name is not None:
        for i in range(len(common)):
            candidate = "/".join(common[i:])
            if (tree / candidate).is_file():
                return candidate
        raise _Refused(
            fd.no,
            f"'{fd.old_name}': neither {'/'.join(common)} nor any shorter end of it is a "
            "file in the kernel tree",
        )
    while len(common) > 1 and _TREE_NAME_RE.match(common[0]):
        common = common[1:]
    if not common:
        raise _Refused(fd.no, f"cannot tell the in-tree path of '{fd.label()}'")
    return "/".join(common)


def _stripped(fd: _FileDiff, old: list[str] | None, new: list[str] | None, n: int) -> str:
    side = new if new is not None else old
    assert side is not None
    if n >= len(side):
        raise _Refused(fd.no, f"--strip {n} leaves nothing of '{fd.label()}'")
    path = side[n:]
    other = old if new is not None else None
    if other is not None and other[-len(path) :] != path:
        raise _Refused(fd.no, f"'{fd.old_name}' does not end with {'/'.join(path)}")
    return "/".join(path)


def _common_suffix(a: list[str], b: list[str]) -> list[str]:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]


# ---- fitting the hunks to a file


def _fix_starts(files: list[_FileDiff], repairs: list[str]) -> None:
    """New-side start lines follow from the old ones and the hunks before (as diff writes)."""
    for fd in files:
        delta = 0
        for h in fd.hunks:
            n_old, n_new = len(h.old()), len(h.new())
            pos = h.old_start if n_old else h.old_start + 1
            pos += delta
            h.new_start = pos if n_new else pos - 1
            if fd.new_name is None:
                h.new_start = 0
            delta += n_new - n_old
            if (h.old_start, n_old, h.new_start, n_new) != h.declared:
                was = "-{},{} +{},{}".format(*h.declared)
                now = f"-{h.old_start},{n_old} +{h.new_start},{n_new}"
                repairs.append(
                    f"{fd.path} hunk {h.index}, line {h.no}: header recounted from the "
                    f"hunk's lines: {was} -> {now}"
                )


def _norm(text: str) -> str:
    return " ".join(text.split())


def _apply_hunks(
    fd: _FileDiff, lines: list[str], repairs: list[str] | None, tree_name: str
) -> list[str]:
    """The file after the hunks, each placed where GNU patch would look first.

    With `repairs` (a real tree), a hunk whose old lines match nowhere exactly may still be
    placed where they match except for whitespace, if that is exactly one place; its context
    and removed lines then take the tree's text.
    """
    cur = list(lines)
    delta = drift = floor = 0
    for h in fd.hunks:
        old = h.old()
        base = h.old_start - 1 if old else h.old_start
        guess = max(base + delta + drift, floor)
        pos = _exact_position(cur, old, guess, floor)
        if pos is None and repairs is not None:
            where = _Where(fd, h, tree_name, delta)
            pos = _whitespace_position(where, cur, guess, floor, repairs)
        if pos is None:
            raise _Refused(h.no, f"{fd.path} hunk {h.index}: its old lines are not in the file")
        new = h.new()
        cur[pos : pos + len(old)] = new
        drift = pos - (base + delta)
        delta += len(new) - len(old)
        floor = pos + len(new)
    return cur


def _exact_position(cur: list[str], old: list[str], guess: int, floor: int) -> int | None:
    if not old:
        return min(max(guess, floor), len(cur))
    found = [p for p in range(floor, len(cur) - len(old) + 1) if cur[p : p + len(old)] == old]
    # GNU patch tries offset 0, +1, -1, +2, -2, ...
    return min(found, key=lambda p: (abs(p - guess), p < guess), default=None)


@dataclass(frozen=True)
class _Where:
    """A hunk being placed, for messages: tree lines are counted before the patch."""

    fd: _FileDiff
    hunk: _Hunk
    tree_name: str
    shift: int  # lines added by the hunks before this one

    def __str__(self) -> str:
        return f"{self.fd.path} hunk {self.hunk.index}"

    def tree_line(self, index: int) -> int:
        return index + 1 - self.shift


def _whitespace_position(
    where: _Where, cur: list[str], guess: int, floor: int, repairs: list[str]
) -> int:
    fd, h, tree_name = where.fd, where.hunk, where.tree_name
    olds = [x for x in h.lines if x.kind in " -"]
    want = [_norm(x.text) for x in olds]
    have = [_norm(line) for line in cur]
    n = len(want)
    found = [p for p in range(floor, len(cur) - n + 1) if have[p : p + n] == want]
    if len(found) > 1:
        places = ", ".join(str(where.tree_line(p)) for p in found[:5])
        raise _Refused(
            h.no,
            f"{where}: its context matches {fd.path} ({tree_name}) only when whitespace is "
            f"ignored, and at {len(found)} places (lines {places}): cannot tell which is meant",
        )
    if not found:
        raise _Refused(*_mismatch(where, olds, have, guess, floor))
    pos = found[0]
    for i, x in enumerate(olds):
        tree_line = cur[pos + i]
        if x.full() != tree_line:
            x.text = tree_line.rstrip("\n")
            x.eol = tree_line.endswith("\n")
            repairs.append(
                f"{where}, line {x.no}: whitespace of a "
                f"{'context' if x.kind == ' ' else 'removed'} line taken from the tree "
                f"({fd.path}:{where.tree_line(pos + i)})"
            )
    return pos


def _mismatch(
    where: _Where, olds: list[_HunkLine], have: list[str], guess: int, floor: int
) -> tuple[int, str]:
    fd, tree_name = where.fd, where.tree_name
    present = set(have)
    for x in olds:
        if _norm(x.text) not in present:
            kind = "context" if x.kind == " " else "removed"
            return x.no, (
                f"{where}: {kind} line {x.text.strip()!r} is not in {fd.path} ({tree_name}), "
                "not even with other whitespace"
            )
    # Every line exists somewhere: report where the longest run near the guess breaks off.
    best, best_len = floor, -1
    for p in range(floor, len(have)):
        run = 0
        while run < len(olds) and p + run < len(have) and have[p + run] == _norm(olds[run].text):
            run += 1
        if run > best_len or (run == best_len and abs(p - guess) < abs(best - guess)):
            best, best_len = p, run
    x = olds[min(best_len, len(olds) - 1)]
    at = best + best_len
    text = repr(have[at]) if at < len(have) else "the end of the file"
    return x.no, (
        f"{where}: line {x.text.strip()!r} does not match {fd.path}:{where.tree_line(at)} "
        f"({tree_name}: {text}), where the hunk's lines before it match"
    )


# ---- checking the result with GNU patch


def _read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "surrogateescape").splitlines(keepends=True)


def _fit_to_tree(
    files: list[_FileDiff], tree: Path, repairs: list[str], tree_name: str
) -> dict[str, list[str] | None]:
    """Every touched file's expected content after the patch (None: deleted)."""
    state: dict[str, list[str] | None] = {}
    for fd in files:
        if fd.path in state:
            current = state[fd.path]
        elif fd.old_name is None:
            current = None if not (tree / fd.path).exists() else _read_lines(tree / fd.path)
        else:
            current = _read_lines(tree / fd.path) if (tree / fd.path).is_file() else None
        if fd.old_name is None and current is not None:
            raise _Refused(fd.no, f"{fd.path} is created by the patch but exists in {tree_name}")
        if fd.old_name is not None and current is None:
            raise _Refused(fd.no, f"{fd.path} is not in {tree_name}")
        result = _apply_hunks(fd, current or [], repairs, tree_name)
        state[fd.path] = None if fd.new_name is None else result
    return state


def _synthetic_files(files: list[_FileDiff]) -> dict[str, list[str]]:
    """Stand-in old files made of each hunk's old lines at its own line numbers."""
    before: dict[str, list[str]] = {}
    for fd in files:
        if fd.path in before:
            raise _Refused(fd.no, f"{fd.path} appears twice; give --kernel-src to check it")
        if fd.old_name is None:
            continue
        lines: list[str] = []
        for h in fd.hunks:
            start = h.old_start - 1 if h.old() else h.old_start
            if start < len(lines):
                raise _Refused(h.no, f"{fd.path} hunk {h.index}: overlaps the hunk before it")
            lines += [f"fwgen filler {fd.path}:{i + 1}\n" for i in range(len(lines), start)]
            lines += h.old()
        before[fd.path] = lines
    return before


def _verify(
    patch_text: str,
    files: list[_FileDiff],
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
            raise _Refused(
                first,
                "the repaired patch does not apply with patch -p1 -F0:\n"
                + textwrap.indent(result.details(), "    "),
            )
        for rel, want in expected.items():
            path = work / rel
            got = _read_lines(path) if path.is_file() else None
            if want is None and got == []:
                got = None
            if got != want:
                raise _Refused(
                    first,
                    f"internal check failed: GNU patch's result for {rel} "
                    "differs from the hunks' effect (an fwgen bug; please report)",
                )
        return result.output


def _tree_name(tree: Path) -> str:
    try:
        return f"linux {kconfig.kernel_version(tree)}"
    except FwgenError:
        return "the kernel tree"


# ---- one block, start to end


def _import_block(
    document: str,
    block: _Block,
    n: int,
    total: int,
    strip_hint: int | None,
    tree: Path | None,
    date: datetime,
    notes: list[str],
) -> ImportedPatch:
    repairs = list(notes)
    files = _parse_block(
        block, repairs, lambda fd: _resolve_path(fd, strip_hint, tree, repairs), tree is None
    )
    if tree is not None:
        tree_name = _tree_name(tree)
        originals = {
            fd.path: _read_lines(tree / fd.path)
            for fd in files
            if fd.old_name is not None and (tree / fd.path).is_file()
        }
        expected = _fit_to_tree(files, tree, repairs, tree_name)
    else:
        originals = _synthetic_files(files)
        expected = {}
        for fd in files:
            result = _apply_hunks(fd, originals.get(fd.path, []), None, "")
            expected[fd.path] = None if fd.new_name is None else result
    _fix_starts(files, repairs)
    subject = f"Import {document}" + (f" (block {n} of {total})" if total > 1 else "")
    diff = _render(files)
    output = _verify(diff, files, originals, expected)
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
    message = _message(document, block.origin, subject, repairs, check, files, date)
    return ImportedPatch(
        name=f"{n:04d}-{_sanitized(subject)}.patch",
        text=message + diff + f"-- \nfwgen {__version__}\n",
        origin=block.origin,
        files=tuple(dict.fromkeys(fd.path for fd in files)),
        hunks=sum(len(fd.hunks) for fd in files),
        repairs=tuple(repairs),
        check=check,
    )


def _render(files: list[_FileDiff]) -> str:
    out: list[str] = []
    for fd in files:
        out.append(f"diff --git a/{fd.path} b/{fd.path}")
        out.extend(fd.extra)
        out.append(f"--- a/{fd.path}" if fd.old_name is not None else "--- /dev/null")
        out.append(f"+++ b/{fd.path}" if fd.new_name is not None else "+++ /dev/null")
        for h in fd.hunks:
            out.append(h.header())
            for x in h.lines:
                out.append(x.kind + x.text)
                if not x.eol:
                    out.append("\\ No newline at end of file")
    return "\n".join(out) + "\n"


def _message(
    document: str,
    origin: str,
    subject: str,
    repairs: list[str],
    check: str,
    files: list[_FileDiff],
    date: datetime,
) -> str:
    def wrapped(text: str, first: str, rest: str) -> list[str]:
        return textwrap.wrap(
            text,
            74,
            initial_indent=first,
            subsequent_indent=rest,
            break_on_hyphens=False,
            break_long_words=False,
        )

    body = wrapped(f"Imported by fwgen patch import from {document}, {origin}.", "", "")
    body.append("")
    if repairs:
        body.append("Repaired:")
        for item in repairs:
            body += wrapped(item, "  - ", "    ")
    else:
        body.append("Nothing needed repair.")
    body.append("")
    body += wrapped(f"Checked: {check}.", "", "  ")
    lines = [
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        "From: fwgen patch import <fwgen@localhost.invalid>",
        f"Date: {email.utils.format_datetime(date)}",
        f"Subject: [PATCH] {subject}",
        "",
        *body,
        "---",
        *_diffstat(files),
        "",
    ]
    return "\n".join(lines) + "\n"


def _diffstat(files: list[_FileDiff]) -> list[str]:
    stats: dict[str, list[int]] = {}
    for fd in files:
        counts = stats.setdefault(fd.path, [0, 0])
        for h in fd.hunks:
            counts[0] += sum(1 for x in h.lines if x.kind == "+")
            counts[1] += sum(1 for x in h.lines if x.kind == "-")
    width = max(len(p) for p in stats)
    most = max(a + r for a, r in stats.values()) or 1
    scale = min(1.0, 50 / most)
    out = []
    for path, (added, removed) in stats.items():
        bar = "+" * round(added * scale) + "-" * round(removed * scale)
        out.append(f" {path:<{width}} | {added + removed:>3} {bar}")
    added = sum(a for a, _ in stats.values())
    removed = sum(r for _, r in stats.values())
    summary = f" {len(stats)} file{'s' if len(stats) != 1 else ''} changed"
    if added:
        summary += f", {added} insertion{'s' if added != 1 else ''}(+)"
    if removed:
        summary += f", {removed} deletion{'s' if removed != 1 else ''}(-)"
    return [*out, summary]


def _sanitized(subject: str) -> str:
    """Like git format-patch's file names: letters, digits, '.' and '_', '-' for the rest."""
    name = re.sub(r"[^A-Za-z0-9._]+", "-", subject)
    name = re.sub(r"\.{2,}", ".", name).strip("-.")
    return name[:64].rstrip("-.")
