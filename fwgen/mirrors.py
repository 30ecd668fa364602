"""Source mirrors for air-gapped builds: what a mirror holds, and whether it holds a file.

A mirror is a plain directory that any web server (or a file:/// URL) can serve:

- every source file Buildroot's `make source` downloads for the board's configurations, in
  Buildroot's download-directory layout (`<package dl dir>/<file>`), which is also one of the
  two places Buildroot looks under BR2_PRIMARY_SITE (`<site>/<dl dir>/<file>`, then
  `<site>/<file>`);
- fwgen's own pinned tarballs (Buildroot, the kernels) at the top, where `--mirror` looks
  (`<mirror>/<file>`);
- `SHA256SUMS` for all of them (`sha256sum -c` works), `fwgen-mirror.json` (which package
  needs which file, for which board and kernels) and a README.txt for whoever serves it.

`fwgen mirror` makes one (fwgen.mirror_export); `fwgen build --mirror URL --offline` checks
here that it holds every file before Buildroot starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from fwgen import __version__, sources
from fwgen.errors import FwgenError

INDEX = "fwgen-mirror.json"
INDEX_FORMAT = 1
SUMS = "SHA256SUMS"
HEAD_TIMEOUT = 20.0


@dataclass(frozen=True)
class Needed:
    """One source file a Buildroot configuration downloads."""

    package: str
    rel: str  # path in Buildroot's download directory: <dl dir>/<file>

    @property
    def file(self) -> str:
        return Path(self.rel).name


def needed_files(info: dict[str, Any]) -> list[Needed]:
    """The files of `make show-info`'s packages, one entry per file (first package wins)."""
    seen: dict[str, Needed] = {}
    for name, pkg in sorted(info.items()):
        for dl in pkg.get("downloads") or []:
            source = dl.get("source", "")
            if source:
                rel = f"{pkg.get('dl_dir') or name}/{source}"
                seen.setdefault(rel, Needed(name, rel))
    return list(seen.values())


def missing_from(mirror: str, items: Iterable[Needed]) -> list[Needed]:
    """The items a mirror serves neither as `<mirror>/<dl dir>/<file>` nor `<mirror>/<file>`."""
    local = sources.local_path(mirror)
    if local is not None:
        return [i for i in items if not any((local / rel).is_file() for rel in (i.rel, i.file))]
    missing = []
    with requests.Session() as session:
        session.headers["User-Agent"] = f"fwgen/{__version__}"
        for item in items:
            if not any(_served(session, f"{mirror}/{rel}") for rel in (item.rel, item.file)):
                missing.append(item)
    return missing


def _served(session: requests.Session, url: str) -> bool:
    try:
        response = session.head(url, timeout=HEAD_TIMEOUT, allow_redirects=True)
    except requests.RequestException as e:
        raise FwgenError(
            f"cannot reach the mirror at {url}: {type(e).__name__}",
            "check that the mirror's web server runs and the URL is right",
        ) from None
    return response.status_code == 200
