"""`fwgen build --prefetch N`: download every package source before the build, N at a time.

Buildroot downloads each source when it reaches the package, one at a time. Prefetching takes
the list from `make show-info` (each package's files, the URLs Buildroot would try, in its
order, with BR2_PRIMARY_SITE first, and its .hash files) and fills Buildroot's download
directory in parallel. A file is kept only if it matches every hash its package's .hash files
give for it; files without a known hash and non-HTTP(S)/FTP sources (git, ...) are left to
Buildroot, which re-checks every file anyway. A prefetch failure is not fatal: Buildroot then
tries the file itself.
"""

from __future__ import annotations

import hashlib
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

from fwgen import __version__
from fwgen.log import log, progress_disabled

CONNECT_TIMEOUT = 20.0
READ_TIMEOUT = 60.0
_SCHEMES = {"http", "https", "ftp"}
_ALGORITHMS = {"md5", "sha1", "sha224", "sha256", "sha384", "sha512"}


@dataclass(frozen=True)
class Item:
    package: str
    dest: Path
    urls: tuple[str, ...]
    hashes: tuple[tuple[str, str], ...]  # (algorithm, hex digest)


@dataclass
class Result:
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no hash or no HTTP(S)/FTP URL
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
            hashes = [(a, h) for a, h in read_hashes(hash_files, source) if a in _ALGORITHMS]
            urls = _urls(dl.get("uris", []), source)
            if not hashes or not urls:
                result.skipped.append(label)
                continue
            items.append(Item(name, dest, urls, tuple(hashes)))
    return items, result


def _fetch(session: requests.Session, item: Item) -> None:
    """Download `item` from its first URL that gives the right content; raise if none does."""
    item.dest.parent.mkdir(parents=True, exist_ok=True)
    part = item.dest.with_name(f".{item.dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    reasons = []
    for url in item.urls:
        digests = {algo: hashlib.new(algo) for algo, _ in item.hashes}
        try:
            with session.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as r:
                if r.status_code != 200:
                    reasons.append(f"{url}: HTTP {r.status_code}")
                    continue
                with part.open("wb") as out:
                    for chunk in r.iter_content(1 << 20):
                        out.write(chunk)
                        for d in digests.values():
                            d.update(chunk)
        except (requests.RequestException, OSError) as e:
            part.unlink(missing_ok=True)
            reasons.append(f"{url}: {type(e).__name__}")
            continue
        wrong = [algo for algo, want in item.hashes if digests[algo].hexdigest() != want]
        if wrong:
            part.unlink(missing_ok=True)
            reasons.append(f"{url}: wrong {', '.join(wrong)}")
            continue
        os.replace(part, item.dest)
        return
    raise RuntimeError("; ".join(reasons) or "no URL")


def prefetch(info: Mapping[str, Any], tree: Path, dl_dir: Path, *, jobs: int) -> Result:
    """Fill `dl_dir` with the sources of `info` (show-info JSON), `jobs` downloads at a time."""
    items, result = plan(info, Path(tree), Path(dl_dir))
    log.info(
        "prefetch: %d to download, %d already there, %d left to Buildroot (git, or no hash)",
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
            local.session = requests.Session()
            local.session.headers["User-Agent"] = f"fwgen/{__version__}"
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
