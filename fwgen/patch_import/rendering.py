"""Rendering an imported patch: the -p1 diff, and a format-patch style message naming
the repairs and the check, with a diffstat."""

from __future__ import annotations

import email.utils
import re
import textwrap
from datetime import datetime

from fwgen.patch_import.diff import FileDiff


def render_diff(files: list[FileDiff]) -> str:
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


def patch_message(
    document: str,
    origin: str,
    subject: str,
    repairs: list[str],
    check: str,
    files: list[FileDiff],
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


def _diffstat(files: list[FileDiff]) -> list[str]:
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


def sanitized(subject: str) -> str:
    """Like git format-patch's file names: letters, digits, '.' and '_', '-' for the rest."""
    name = re.sub(r"[^A-Za-z0-9._]+", "-", subject)
    name = re.sub(r"\.{2,}", ".", name).strip("-.")
    return name[:64].rstrip("-.")
