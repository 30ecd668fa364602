"""Finding the patches in a document: the ```patch/```diff blocks of markdown, else the
whole file when it holds a unified diff."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fwgen.patch_import.diff import Block, Line, Refused
from fwgen.patch_import.parsing import is_file_start

_FENCE_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")


def find_blocks(text: str) -> list[Block]:
    lines = [Line(i, t) for i, t in enumerate(text.split("\n"), 1)]
    if lines and lines[-1].text == "":
        lines.pop()
    fenced = list(_fenced_blocks(lines))
    if fenced:
        return fenced
    if any(is_file_start(lines, k) for k in range(len(lines))):
        return [Block("the whole file", lines, fenced=False)]
    return []


def _fenced_blocks(lines: list[Line]) -> Iterator[Block]:
    i = 0
    while i < len(lines):
        m = _FENCE_RE.match(lines[i].text)
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        content: list[Line] = []
        while j < len(lines) and not _closes(lines[j].text, fence):
            content.append(Line(lines[j].no, _dedent(lines[j].text, indent)))
            j += 1
        words = info.split()
        lang = words[0].lower() if words else ""
        if lang in ("patch", "diff") and j >= len(lines):
            # Running to the end of the document: it may well have been cut short there,
            # and a patch missing its end can still apply (without what is missing).
            raise Refused(
                lines[i].no,
                f"the ```{lang} block that starts here is never closed: the document may be "
                f"cut short (add the closing {fence} if the patch is complete)",
            )
        if lang in ("patch", "diff"):
            yield Block(f"```{lang} block at line {lines[i].no}", content, fenced=True)
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
