"""The result of an import: patches made -p1, and writing them into a patch directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fwgen import fsutil


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
