"""One downloader: a URL into a file, verified by its sha256, used by the source cache
(fwgen.sources) and by Buildroot's source prefetch (fwgen.prefetch).

Bytes arrive in a `.part` file, hashed while streaming; an interrupted transfer continues with
a Range request, a failure worth retrying (timeouts, 5xx, a short body, a stall) is retried
with backoff, and the caller renames the `.part` into place only once it verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from tqdm import tqdm

from fwgen import __version__, fsutil
from fwgen.errors import FwgenError
from fwgen.log import log, progress_disabled

# Tunables; module constants so tests can make them small.
CHUNK_SIZE = 1 << 20
CONNECT_TIMEOUT = 20.0  # seconds to establish a connection
READ_TIMEOUT = 30.0  # seconds without a single byte from the server
LOW_SPEED_LIMIT = 1024  # bytes/s: slower than this for LOW_SPEED_TIME seconds is a stall
LOW_SPEED_TIME = 60.0
ATTEMPTS = 4  # per URL, for failures worth retrying
BACKOFF = 1.0  # first delay between attempts; doubles each time
BACKOFF_MAX = 30.0

_RETRY_STATUS = {408, 425, 429}


class DigestMismatch(FwgenError):
    """The server sent other bytes than the sha256 says; nothing was kept."""


@dataclass(frozen=True)
class Expected:
    """What a download must be: its name (for messages and the progress bar) and sha256."""

    name: str
    sha256: str


def session() -> requests.Session:
    """An HTTP session that says it is fwgen."""
    new = requests.Session()
    new.headers["User-Agent"] = f"fwgen/{__version__}"
    return new


class UrlFailed(Exception):
    """This URL failed; `retry` says whether trying it again may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def copy_local(path: Path, url: str, expected: Expected, part: Path) -> None:
    """A file:// mirror: copy the file into `part`, hashing it; the same checks as a download."""
    try:
        source = path.open("rb")
    except OSError as e:
        raise UrlFailed(e.strerror or str(e), retry=False) from None
    digest = hashlib.sha256()
    with source, part.open("wb") as out:
        while chunk := source.read(CHUNK_SIZE):
            out.write(chunk)
            digest.update(chunk)
    _check_digest(expected, url, part, digest.hexdigest(), resumed=False)


def fetch_url(
    session: requests.Session, url: str, expected: Expected, part: Path, *, progress: bool = True
) -> None:
    """Download `url` into `part` (continuing it if it exists) until it verifies: retries
    with backoff for failures worth retrying, resumes with a Range request, fails a stalled
    transfer. UrlFailed when this URL cannot give the file; FwgenError for a sha256 mismatch
    or a disk that cannot take it."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _attempt(session, url, expected, part, progress=progress)
            return
        except UrlFailed as e:
            if not e.retry or attempt == ATTEMPTS:
                if e.retry:
                    e.reason += f" (gave up after {ATTEMPTS} attempts)"
                raise
            delay = min(BACKOFF * 2 ** (attempt - 1), BACKOFF_MAX)
            log.warning(
                f"{url}: {e.reason}; retrying in {delay:.1f}s (attempt {attempt + 1}/{ATTEMPTS})"
            )
            time.sleep(delay)


def _attempt(
    session: requests.Session, url: str, expected: Expected, part: Path, *, progress: bool
) -> None:
    """One request for `url`, continuing `part` if it exists; returns once `part` verifies."""
    start = 0
    try:
        offset = part.stat().st_size if part.exists() else 0
        digest = fsutil.sha256_digest(part) if offset else hashlib.sha256()
        with _request(session, url, offset) as response:
            if response.status_code == 416 and offset:
                _range_not_satisfiable(expected, part, digest)
                return
            start = _start_offset(response, url, part, offset)
            if start != offset:
                digest = hashlib.sha256()
            _receive(response, expected, part, start, digest, progress=progress)
    except requests.exceptions.ConnectTimeout:
        raise UrlFailed(f"connect timed out after {CONNECT_TIMEOUT:g}s", retry=True) from None
    except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
        raise UrlFailed(f"read timed out: no data for {READ_TIMEOUT:g}s", retry=True) from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL) as e:
        raise UrlFailed(f"unsupported URL: {e}", retry=False) from None
    except requests.exceptions.TooManyRedirects as e:
        raise UrlFailed(str(e), retry=False) from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
        raise UrlFailed(_describe(e), retry=True) from None
    except OSError as e:  # after requests' errors, which are OSErrors too: this is the disk
        raise FwgenError(
            f"cannot write {part}: {e.strerror or e}",
            f"make room or fix permissions in {part.parent}, or set FWGEN_CACHE_DIR elsewhere",
        ) from None
    _check_digest(expected, url, part, digest.hexdigest(), resumed=start > 0)


def _range_not_satisfiable(expected: Expected, part: Path, digest: Any) -> None:
    # The .part may already be whole (interrupted between the last byte and the rename).
    if digest.hexdigest() == expected.sha256:
        return
    part.unlink()
    raise UrlFailed("the server refused to resume (HTTP 416); starting over", retry=True)


@contextlib.contextmanager
def _request(session: requests.Session, url: str, offset: int) -> Iterator[requests.Response]:
    # identity: the sha256 is of the bytes as stored, so no transparent (de)compression.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = session.get(
        url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
    )
    try:
        yield response
    finally:
        response.close()


def _start_offset(response: requests.Response, url: str, part: Path, offset: int) -> int:
    """Where the body of `response` starts in the file; the .part is cut to match."""
    status = response.status_code
    if status == 206:
        start = _content_range_start(response.headers.get("Content-Range", ""))
        if start != offset:
            part.unlink(missing_ok=True)
            raise UrlFailed(
                f"asked for bytes from {offset}, got Content-Range "
                f"{response.headers.get('Content-Range')!r}; starting over",
                retry=True,
            )
        return offset
    if status == 200:
        if offset:
            log.info(f"{url}: the server ignored the resume request; starting over")
        part.unlink(missing_ok=True)
        return 0
    reason = f"HTTP {status} {response.reason or ''}".rstrip()
    raise UrlFailed(reason, retry=status >= 500 or status in _RETRY_STATUS)


def _content_range_start(value: str) -> int | None:
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value)
    return int(match.group(1)) if match else None


def _receive(
    response: requests.Response,
    expected: Expected,
    part: Path,
    offset: int,
    digest: Any,
    *,
    progress: bool,
) -> None:
    """Append the body to `part`, hashing as it goes; a short body is a retryable failure."""
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    got = 0
    with (
        _progress(expected.name, offset, size, shown=progress) as bar,
        part.open("ab") as out,
    ):
        stall = _StallGuard()
        for chunk in _chunks(response.raw):
            out.write(chunk)
            digest.update(chunk)
            got += len(chunk)
            bar.update(len(chunk))
            stall.feed(len(chunk))
    if size is not None and got < size:
        raise UrlFailed(f"short body: got {got} of {size} bytes", retry=True)


def _chunks(raw: Any) -> Iterator[bytes]:
    # read1 returns what has arrived instead of waiting for a full chunk, so a server that
    # drips bytes is noticed by the stall guard (urllib3 >= 2.3; older ones block per chunk).
    read = getattr(raw, "read1", None) or raw.read
    while True:
        chunk = read(CHUNK_SIZE, decode_content=False)
        if not chunk:
            return
        yield chunk


class _StallGuard:
    """Fails a transfer slower than LOW_SPEED_LIMIT bytes/s for LOW_SPEED_TIME seconds.

    The socket timeout alone never fires for a server that sends one byte just often enough.
    """

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.bytes = 0

    def feed(self, n: int) -> None:
        self.bytes += n
        elapsed = time.monotonic() - self.since
        if elapsed < LOW_SPEED_TIME:
            return
        if self.bytes < LOW_SPEED_LIMIT * elapsed:
            raise UrlFailed(
                f"stalled: {self.bytes} bytes in {elapsed:.1f}s "
                f"(below {LOW_SPEED_LIMIT} bytes/s for {LOW_SPEED_TIME:g}s)",
                retry=True,
            )
        self.since, self.bytes = time.monotonic(), 0


def _check_digest(expected: Expected, url: str, part: Path, actual: str, *, resumed: bool) -> None:
    if actual == expected.sha256:
        return
    part.unlink()
    if resumed:
        # The bytes kept from an earlier attempt may be what is wrong: once more from zero.
        raise UrlFailed("the resumed download does not verify; starting over", retry=True)
    raise DigestMismatch(
        f"sha256 mismatch for {expected.name} downloaded from {url}:\n"
        f"  expected {expected.sha256}\n"
        f"  actual   {actual}",
        "the server sent different content under this name (a broken mirror, a captive "
        "portal, or tampering); nothing was kept. Check the URL or use another mirror",
    )


def _describe(e: BaseException) -> str:
    """A one-line reason from a requests/urllib3 error (their messages nest several layers)."""
    text = str(e)
    if m := re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text):
        return f"short body: connection closed after {m[1]} bytes, {m[2]} more expected"
    if m := re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text):
        return f"connection failed: {m[1].strip()}"
    if m := re.search(r"(\w+Error)\(\d+, '([^']+)'\)", text):
        return f"connection failed: {m[2]} ({m[1]})"
    return f"connection failed: {text or type(e).__name__}"


def _progress(name: str, offset: int, length: int | None, *, shown: bool) -> tqdm:
    return tqdm(
        desc=name,
        total=offset + length if length is not None else None,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        miniters=1,
        disable=not shown or progress_disabled(),
    )
