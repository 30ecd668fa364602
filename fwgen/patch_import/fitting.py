"""Fitting the hunks to a file: header counts, and where GNU patch places each hunk
(whitespace taken from the tree when exactly one place in the file explains it)."""

from __future__ import annotations

from dataclasses import dataclass

from fwgen.patch_import.diff import FileDiff, Hunk, HunkLine, Refused


def fix_starts(files: list[FileDiff], repairs: list[str]) -> None:
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


def apply_hunks(
    fd: FileDiff, lines: list[str], repairs: list[str] | None, tree_name: str
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
            raise Refused(h.no, f"{fd.path} hunk {h.index}: its old lines are not in the file")
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

    fd: FileDiff
    hunk: Hunk
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
        raise Refused(
            h.no,
            f"{where}: its context matches {fd.path} ({tree_name}) only when whitespace is "
            f"ignored, and at {len(found)} places (lines {places}): cannot tell which is meant",
        )
    if not found:
        raise Refused(*_mismatch(where, olds, have, guess, floor))
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
    where: _Where, olds: list[HunkLine], have: list[str], guess: int, floor: int
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
