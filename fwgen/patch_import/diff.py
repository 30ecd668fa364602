"""A block of a document as parsed: its lines, files, hunks and hunk lines; and the
refusal every stage raises, naming the document line it is about."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Line:
    no: int  # 1-based line number in the source document
    text: str


@dataclass
class Block:
    origin: str
    lines: list[Line]
    fenced: bool


@dataclass
class HunkLine:
    kind: str  # " ", "-" or "+"
    text: str  # without the kind character and without a line end
    no: int
    eol: bool = True  # False: followed by "\ No newline at end of file"

    def full(self) -> str:
        return self.text + ("\n" if self.eol else "")


@dataclass
class Hunk:
    no: int  # document line of the @@ header
    index: int  # 1-based, within its file
    old_start: int
    declared: tuple[int, int, int, int]
    section: str
    lines: list[HunkLine]
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
class FileDiff:
    no: int
    old_name: str | None  # None for /dev/null
    new_name: str | None
    extra: list[str]
    hunks: list[Hunk] = field(default_factory=list)
    path: str = ""

    def label(self) -> str:
        return self.path or self.new_name or self.old_name or "?"


class Refused(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what
