"""`fwgen build --prefetch N`: download every package source before the build, N at a time.

Buildroot downloads each source when it reaches the package, one at a time. Prefetching takes
the list from `make show-info` (each package's files, the URLs Buildroot would try, in its
order, with BR2_PRIMARY_SITE first, and its .hash files) and fills Buildroot's download
directory in parallel, with fwgen's one downloader (fwgen.download: retries, resume, stall
guard). A file is kept only if it matches the sha256 its package's .hash files give for it;
files without one and non-HTTP(S) sources (git, ...) are left to Buildroot, which re-checks
every hash of every file anyway. A prefetch failure is not fatal: Buildroot then tries the
file itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from tqdm import tqdm

from fwgen import download
from fwgen.log import log, progress_disabled

_SCHEMES = {"http", "https"}


@dataclass(frozen=True)
class Item:
    package: str
    dest: Path
    urls: tuple[str, ...]
    sha256: str


@dataclass
class Result:
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no sha256 or no HTTP(S) URL
    failed: dict[str, str] = field(default_factory=dict)


def read_hashes(files: Iterable[Path], name: str) -> list[tuple[str, str]]:
    """Every (algorithm, digest) the .hash files give for the file `name`."""
    found = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            # As Buildroot's check-hash reads them: type, digest, then the rest is the name.
            words = line.strip().split(None, 2)
            if len(words) == 3 and not words[0].startswith("#") and words[2] == name:
                found.append((words[0], words[1]))
    return found


def _urls(uris: Iterable[str], source: str) -> tuple[str, ...]:
    urls = []
    for uri in uris:
        method, _, site = uri.partition("+")
        scheme, _, flag = method.partition("|")
        if scheme in _SCHEMES and site:
            name = quote(source) if flag == "urlencode" else source
            urls.append(f"{site.rstrip('/')}/{name}")
    return tuple(urls)


def plan(info: Mapping[str, Any], tree: Path, dl_dir: Path) -> tuple[list[Item], Result]:
    """What to download: (items to fetch, a result already listing present and skipped ones)."""
    items: list[Item] = []
    result = Result()
    seen: set[Path] = set()
    for name, pkg in sorted(info.items()):
        hash_files = [Path(h) if Path(h).is_absolute() else tree / h for h in pkg.get("hashes", [])]
        for dl in pkg.get("downloads") or []:
            source = dl.get("source", "")
            dest = dl_dir / pkg.get("dl_dir", name) / source
            if not source or dest in seen:
                continue
            seen.add(dest)
            label = f"{name}: {source}"
            if dest.exists():
                result.present.append(label)
                continue
            sha256 = next((h for a, h in read_hashes(hash_files, source) if a == "sha256"), "")
            urls = _urls(dl.get("uris", []), source)
            if not sha256 or not urls:
                result.skipped.append(label)
                continue
            items.append(Item(name, dest, urls, sha256))
    return items, result


def _fetch(session: requests.Session, item: Item) -> None:
    """Download `item` from its first URL that gives the right content; raise if none does."""
    item.dest.parent.mkdir(parents=True, exist_ok=True)
    # One .part per process and thread: another build may prefetch into the same directory.
    part = item.dest.with_name(f".{item.dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    expected = download.Expected(item.dest.name, item.sha256)
    reasons = []
    for url in item.urls:
        try:
            download.fetch_url(session, url, expected, part, progress=False)
        except download.UrlFailed as e:
            reasons.append(f"{url}: {e.reason}")
        except download.DigestMismatch:
            reasons.append(f"{url}: wrong sha256")
        else:
            os.replace(part, item.dest)
            return
        finally:
            part.unlink(missing_ok=True)
    raise RuntimeError("; ".join(reasons) or "no URL")


def prefetch(info: Mapping[str, Any], tree: Path, dl_dir: Path, *, jobs: int) -> Result:
    """Fill `dl_dir` with the sources of `info` (show-info JSON), `jobs` downloads at a time."""
    items, result = plan(info, Path(tree), Path(dl_dir))
    log.info(
        "prefetch: %d to download, %d already there, %d left to Buildroot (git, ftp, or no sha256)",
        len(items),
        len(result.present),
        len(result.skipped),
    )
    if not items:
        return result
    lock = threading.Lock()
    local = threading.local()  # one requests.Session per worker thread
    sessions: list[requests.Session] = []

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = download.session()
            with lock:
                sessions.append(local.session)
        return local.session

    with tqdm(total=len(items), unit="file", desc="prefetch", disable=progress_disabled()) as bar:

        def one(item: Item) -> None:
            label = f"{item.package}: {item.dest.name}"
            try:
                _fetch(session(), item)
                with lock:
                    result.fetched.append(label)
            except RuntimeError as e:
                with lock:
                    result.failed[label] = str(e)
            with lock:
                bar.update(1)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, items))
    for s in sessions:
        s.close()
    for label, reason in sorted(result.failed.items()):
        log.warning("prefetch: %s failed (%s); Buildroot will try it itself", label, reason)
    return result
