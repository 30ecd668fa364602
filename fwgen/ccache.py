"""A compile cache shared between hosts: ccache's own remote storage, one setting away.

fwgen does not build a cache service; ccache (Debian's 4.7 for the kernel-only path, the
host-ccache Buildroot 2025.02 builds with hiredis for the Buildroot path) already stores
results in a remote backend after its local cache: `redis://HOST[:PORT]`, `http://HOST/PATH`
(any WebDAV-ish server that takes PUT) or `file:///PATH` (an NFS mount, say). fwgen passes the
setting as ccache configuration in the compiler's environment (`CCACHE_REMOTE_STORAGE`,
which ccache reads like its configuration file), local first, remote second; read-only for
hosts that must not write (CI on pull requests).

Whether objects are shareable between hosts depends on what the compiler sees, so fwgen keeps
it the same: relative paths under ccache's `base_dir` (the build directory), `hash_dir`
off (no working directory in the hash), and fixed `KBUILD_BUILD_*` stamps (fwgen.kernel sets
those; Buildroot does the same with BR2_REPRODUCIBLE).

A remote that is down never fails a build: ccache logs the error and compiles locally; each
compile waits at most the connect timeout set here. Per-build statistics come from ccache's
stats log (`CCACHE_STATSLOG`), which counts only this build's compiler calls.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests

from fwgen.errors import FwgenError
from fwgen.log import log

ENV_URL = "FWGEN_CCACHE_REMOTE"
ENV_READ_ONLY = "FWGEN_CCACHE_REMOTE_READ_ONLY"
CONNECT_TIMEOUT_MS = 500  # per compile, when the remote does not answer
OPERATION_TIMEOUT_MS = 5000
_SCHEMES = ("redis", "http", "file")


@dataclass(frozen=True)
class Remote:
    """Where ccache keeps results after the local cache, and whether this host may write."""

    url: str
    read_only: bool = False

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.url).scheme

    def storage(self) -> str:
        """The `remote_storage` value: the URL with ccache's |attribute=value options."""
        attrs = []
        if self.scheme in ("redis", "http"):
            attrs += [
                f"connect-timeout={CONNECT_TIMEOUT_MS}",
                f"operation-timeout={OPERATION_TIMEOUT_MS}",
            ]
        if self.read_only:
            attrs.append("read-only=true")
        return "|".join([self.url, *attrs])

    def describe(self) -> str:
        shown = _without_password(self.url)
        return f"{shown} ({'read-only' if self.read_only else 'read-write'})"

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        """(reachable, detail): a real round trip, as doctor and the build's first line show."""
        parts = urllib.parse.urlsplit(self.url)
        try:
            if self.scheme == "redis":
                return _redis_ping(parts, timeout)
            if self.scheme == "http":
                response = requests.get(self.url, timeout=timeout)
                return response.status_code < 500, f"HTTP {response.status_code}"
            path = Path(urllib.parse.unquote(parts.path))
            if not path.is_dir():
                return False, f"{path} is not a directory"
            if not self.read_only and not os.access(path, os.W_OK):
                return False, f"{path} is not writable (use read-only mode)"
            return True, "directory present"
        except (OSError, requests.RequestException) as e:
            return False, f"{type(e).__name__}: {e}"

    def status(self, timeout: float = 2.0) -> tuple[bool, str]:
        """(reachable, one line for the user): what a build prints before its first compile
        and what `fwgen doctor` shows. Unreachable is a warning, never an error."""
        reachable, detail = self.check(timeout)
        if reachable:
            return True, f"remote compile cache {self.describe()}: reachable ({detail})"
        return False, (
            f"remote compile cache {self.describe()}: NOT reachable ({detail}); builds go on "
            f"with the local cache only, each compile waiting at most {CONNECT_TIMEOUT_MS} ms "
            "for the remote"
        )


def announce(remote: Remote) -> bool:
    """Log whether the remote answers (a warning when it does not); the build goes on."""
    reachable, line = remote.status()
    if reachable:
        log.info("%s", line)
    else:
        log.warning("warning: %s", line)
    return reachable


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def _redis_ping(parts: urllib.parse.SplitResult, timeout: float) -> tuple[bool, str]:
    with socket.create_connection(
        (parts.hostname or "localhost", parts.port or 6379), timeout
    ) as s:
        s.settimeout(timeout)
        if parts.password:
            user = urllib.parse.unquote(parts.username or "default")
            words = ["AUTH", user, urllib.parse.unquote(parts.password)]
            s.sendall(_resp(words))
            if not s.recv(256).startswith(b"+OK"):
                return False, "AUTH refused"
        s.sendall(_resp(["PING"]))
        answer = s.recv(256)
    if answer.startswith(b"+PONG"):
        return True, "PONG"
    return False, answer.decode("latin-1").strip() or "no answer"


def _resp(words: list[str]) -> bytes:
    out = f"*{len(words)}\r\n"
    for word in words:
        out += f"${len(word.encode())}\r\n{word}\r\n"
    return out.encode()


def resolve(url: str | None, read_only: bool = False) -> Remote | None:
    """--ccache-remote URL (else $FWGEN_CCACHE_REMOTE); --ccache-remote-read-only (else
    $FWGEN_CCACHE_REMOTE_READ_ONLY=1). None when no remote is set."""
    text = url if url is not None else os.environ.get(ENV_URL, "")
    text = text.strip()
    env_ro = os.environ.get(ENV_READ_ONLY, "").strip().lower()
    if env_ro not in ("", "0", "1", "true", "false", "yes", "no"):
        raise FwgenError(f"${ENV_READ_ONLY}={env_ro!r} is neither 1 nor 0", "set it to 1 or 0")
    read_only = read_only or env_ro in ("1", "true", "yes")
    if not text:
        if read_only:
            raise FwgenError(
                "read-only remote compile cache asked for, but no remote is set",
                f"give --ccache-remote URL (or {ENV_URL})",
            )
        return None
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in _SCHEMES or "|" in text or re.search(r"\s", text):
        raise FwgenError(
            f"--ccache-remote {text!r}: not a redis://, http:// or file:/// URL",
            "e.g. --ccache-remote redis://cache.example.org:6379, http://cache/ccache, or "
            "file:///mnt/ccache",
        )
    if parts.scheme in ("redis", "http") and not parts.hostname:
        raise FwgenError(f"--ccache-remote {text!r}: no host", "e.g. redis://HOST:6379")
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
        raise FwgenError(
            f"--ccache-remote {text!r}: not an absolute path", "e.g. file:///mnt/ccache"
        )
    return Remote(text.rstrip("/") if parts.scheme == "http" else text, read_only)


def environment(remote: Remote | None, *, base_dir: Path, stats_log: Path) -> dict[str, str]:
    """The ccache settings for one build's compiler calls (environment variables)."""
    env = {
        "CCACHE_BASEDIR": str(Path(base_dir).resolve()),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_STATSLOG": str(stats_log),
    }
    if remote is not None:
        env["CCACHE_REMOTE_STORAGE"] = remote.storage()
    return env


@dataclass(frozen=True)
class Stats:
    """One build's ccache counters, from its stats log."""

    calls: int  # cacheable compiler calls
    local_hits: int
    remote_hits: int
    misses: int
    remote_errors: int

    def summary(self, remote: Remote | None) -> str:
        if not self.calls:
            return "ccache: no cacheable compiler calls in this build"
        text = (
            f"ccache: {self.calls} compiler calls; local hits {self.local_hits} "
            f"({_pct(self.local_hits, self.calls)})"
        )
        if remote is not None:
            text += f", remote hits {self.remote_hits} ({_pct(self.remote_hits, self.calls)})"
        text += f", misses {self.misses} ({_pct(self.misses, self.calls)})"
        if self.remote_errors:
            text += (
                f"; the remote {remote.describe() if remote else ''} failed "
                f"{self.remote_errors} time(s): those compiles ran locally"
            )
        return text


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def read_stats(stats_log: Path) -> Stats:
    """Count the stats log's lines (`# <file>` per call, then one counter name per line)."""
    counts: Counter[str] = Counter()
    try:
        lines = Path(stats_log).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if line and not line.startswith("#"):
            counts[line.strip()] += 1
    hits = counts["direct_cache_hit"] + counts["preprocessed_cache_hit"]
    return Stats(
        calls=hits + counts["cache_miss"],
        local_hits=counts["local_storage_hit"],
        remote_hits=counts["remote_storage_hit"],
        misses=counts["cache_miss"],
        remote_errors=counts["remote_storage_error"] + counts["remote_storage_timeout"],
    )
