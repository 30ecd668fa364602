"""Verified downloads and safe tarball extraction, cached and shared between processes.

Invariants:
- a file under its final name in cache_dir()/dl/ is complete and was verified; it is still
  hashed again on every use, so a file damaged later (disk, crash, hand edit) is never used;
- bytes arrive in `<final>.part`, hashed while streaming, and are renamed into place only when
  the sha256 matches;
- one flock per file name serialises processes sharing a cache: a second process waits, then
  finds the verified file instead of downloading it again;
- an extracted tree appears under cache_dir()/src/ by one rename, after every member has been
  checked: nothing is ever written outside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import requests

from fwgen import fsutil
from fwgen.board import Download
from fwgen.download import Expected, UrlFailed, copy_local, fetch_url
from fwgen.download import session as http_session
from fwgen.errors import FwgenError
from fwgen.log import log
from fwgen.paths import cache_dir

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


# --- the download cache --------------------------------------------------------------------


def download_dir() -> Path:
    return cache_dir() / "dl"


def cached_path(download: Download) -> Path:
    """Where `download` lives in the cache once verified."""
    return download_dir() / download.file


def fetch(
    downloads: Sequence[Download], *, mirrors: Sequence[str] = (), offline: bool = False
) -> list[Path]:
    """Make every download present and verified in the cache; their paths, in order.

    Mirrors (`mirrors`, then $FWGEN_MIRROR; http(s):// or file://) are tried before each
    file's own URLs, as `<mirror>/<file>`. Offline (`offline` or $FWGEN_OFFLINE=1), nothing
    but the cache and the mirrors is used: an air-gapped host's own mirror is not "network".
    """
    all_mirrors = mirror_list(mirrors)
    if is_offline(offline) and not all_mirrors:
        return _from_cache_only(downloads)
    with http_session() as session:
        return [
            _fetch_one(session, d, all_mirrors, mirrors_only=is_offline(offline)) for d in downloads
        ]


def is_offline(offline: bool = False) -> bool:
    """--offline, or $FWGEN_OFFLINE=1: the one place both are read."""
    return offline or _env_flag("FWGEN_OFFLINE")


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FwgenError(
        f"${name}={os.environ[name]!r} is neither 1 nor 0", f"set {name}=1 or unset it"
    )


def mirror_list(mirrors: Sequence[str] = ()) -> list[str]:
    """The mirrors to use, in order: `mirrors` (--mirror), then $FWGEN_MIRROR; the one place
    both are read. Each is an http(s):// or file:/// URL, without a trailing slash."""
    env = re.split(r"[\s,]+", os.environ.get("FWGEN_MIRROR", "").strip())
    result: list[str] = []
    for mirror in [*mirrors, *env]:
        if not mirror:
            continue
        if not re.match(r"^(https?://[^/\s]+|file:///\S*)", mirror):
            raise FwgenError(
                f"mirror {mirror!r} is neither an http(s) URL nor a file:/// URL",
                "give --mirror / FWGEN_MIRROR as http://host[:port]/path or file:///abs/path",
            )
        if mirror.rstrip("/") not in result:
            result.append(mirror.rstrip("/"))
    return result


def local_path(url: str) -> Path | None:
    """The file a file:/// URL names; None for other URLs."""
    if not url.startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _candidate_urls(
    download: Download, mirrors: Sequence[str], *, mirrors_only: bool = False
) -> list[str]:
    urls = [f"{m}/{download.file}" for m in mirrors]
    if not mirrors_only:
        urls += list(download.urls)
    return list(dict.fromkeys(urls))


def _from_cache_only(downloads: Sequence[Download]) -> list[Path]:
    found: list[Path] = []
    missing: list[Download] = []
    for download in downloads:
        final = cached_path(download)
        with _locked(_lock_path(download_dir(), download.file), download.file):
            if _verify_cached(final, download):
                found.append(final)
            else:
                missing.append(download)
    if missing:
        raise FwgenError(_missing_message(missing), _missing_hint())
    return found


def _missing_message(missing: Sequence[Download]) -> str:
    lines = [f"offline, and {len(missing)} file(s) are not in the cache:"]
    for d in missing:
        lines.append(f"  {d.file}")
        lines.append(f"    sha256 {d.sha256}")
        lines.extend(f"    url    {url}" for url in d.urls)
    return "\n".join(lines)


def _missing_hint() -> str:
    return (
        f"download them into {download_dir()}/ (e.g. curl -o {download_dir()}/FILE URL; fwgen "
        "checks the sha256), or run without --offline / FWGEN_OFFLINE"
    )


# --- one download ----------------------------------------------------------------------------


def _fetch_one(
    session: requests.Session,
    download: Download,
    mirrors: Sequence[str],
    *,
    mirrors_only: bool = False,
) -> Path:
    final = cached_path(download)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(_lock_path(download_dir(), download.file), download.file):
        if _verify_cached(final, download):
            log.info(f"{download.file}: in the cache, sha256 verified")
            return final
        failures: list[tuple[str, str]] = []
        for url in _candidate_urls(download, mirrors, mirrors_only=mirrors_only):
            log.info(f"{download.file}: downloading {url}")
            expected = Expected(download.file, download.sha256)
            try:
                if (path := local_path(url)) is not None:
                    copy_local(path, url, expected, _part_path(final))
                else:
                    fetch_url(session, url, expected, _part_path(final))
            except UrlFailed as e:
                failures.append((url, e.reason))
                continue
            os.replace(_part_path(final), final)
            log.info(f"{download.file}: downloaded from {url}, sha256 verified")
            return final
    message = _failures_message(download, failures)
    if mirrors_only:
        message = "offline: only the cache and the mirror(s) were tried.\n" + message
    raise FwgenError(message, _failures_hint(download))


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def _verify_cached(final: Path, download: Download) -> bool:
    """True if `final` exists with the right content; a wrong file is removed."""
    if not final.is_file():
        return False
    actual = fsutil.sha256_file(final)
    if actual == download.sha256:
        return True
    log.warning(
        f"{final}: sha256 is {actual}, expected {download.sha256}; removing it and fetching again"
    )
    final.unlink()
    return False


def _failures_message(download: Download, failures: Sequence[tuple[str, str]]) -> str:
    lines = [f"could not download {download.file} from any of its URLs:"]
    lines.extend(f"  {url}: {reason}" for url, reason in failures)
    return "\n".join(lines)


def _failures_hint(download: Download) -> str:
    return (
        "check the network (and proxy settings), or give a mirror with --mirror / FWGEN_MIRROR, "
        f"or put the file into {download_dir()}/ yourself (sha256 {download.sha256})"
    )


# --- inter-process locks ---------------------------------------------------------------------


def _lock_path(directory: Path, name: str) -> Path:
    return directory / ".locks" / f"{name}.lock"


@contextlib.contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock on `path`, held for the block. Lock files are never deleted: removing
    one while another process waits on it would let a third process lock a different inode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"{what}: waiting for another fwgen process using it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- safe extraction -------------------------------------------------------------------------


def source_dir() -> Path:
    return cache_dir() / "src"


def extract(tarball: Path, sha256: str | None = None) -> Path:
    """Extract `tarball` (xz, gz, bz2 or plain) once into the cache, keyed by its content.

    `sha256` is the tarball's digest when the caller has just verified it (saves hashing it
    again). Returns the tarball's single top-level directory (linux-4.0/) when it has one,
    else the extraction root. Members that would land outside the tree (absolute paths,
    `..`, links escaping it, device nodes and FIFOs) are refused with an FwgenError.
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise FwgenError(f"{tarball}: no such file", "give the path of a source tarball")
    key = (sha256 or fsutil.sha256_file(tarball))[:16]
    root = source_dir()
    target = root / key
    root.mkdir(parents=True, exist_ok=True)
    with _locked(_lock_path(root, key), tarball.name):
        if not target.is_dir():
            _extract_fresh(tarball, target)
        else:
            log.info(f"{tarball.name}: already extracted in {target}")
    return _top_level(target)


def _extract_fresh(tarball: Path, target: Path) -> None:
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a process that died mid-way
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the tree after the rename
    try:
        log.info(f"{tarball.name}: extracting into {target}")
        _extract_checked(tarball, tmp)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _extract_checked(tarball: Path, dest: Path) -> None:
    try:
        with tarfile.open(tarball, "r:*") as tar:
            # One forward pass: each member is checked just before tarfile extracts it, and
            # the "data" filter checks it again against the real file system.
            tar.extractall(dest, members=_checked_members(tar, tarball), **_data_filter())
    except FwgenError:
        raise
    except _FILTER_ERROR as e:
        member = getattr(e, "tarinfo", None)
        name = member.name if member is not None else "?"
        raise _refused(tarball, name, str(e)) from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise FwgenError(
            f"{tarball}: cannot extract: {e}",
            "the tarball is damaged or not a tarball; delete it and fetch it again",
        ) from None


# Python >= 3.11.4 (and distributions' security backports) have extraction filters.
_FILTER_ERROR: Any = getattr(tarfile, "FilterError", ())


def _data_filter() -> dict[str, str]:
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _checked_members(tar: tarfile.TarFile, tarball: Path) -> Iterator[tarfile.TarInfo]:
    links: dict[str, str] = {}  # symlinks extracted so far: resolved path -> link target
    for member in tar:
        reason, where = _member_problem(member, links)
        if reason:
            raise _refused(tarball, member.name, reason)
        if member.issym():
            links[where] = member.linkname
        else:
            links.pop(where, None)
        yield member


def _member_problem(member: tarfile.TarInfo, links: dict[str, str]) -> tuple[str, str]:
    """Why `member` may not be extracted ("" if it may), and where it lands in the tree."""
    name = member.name
    if name.startswith("/"):
        return "absolute path", ""
    parts = name.split("/")
    if ".." in parts:
        return "'..' in its path", ""
    if member.ischr() or member.isblk() or member.isfifo():
        return "device node or FIFO", ""
    parent = _resolve(parts[:-1], links)
    if parent is None:
        return "its directory is a link leading outside the tree", ""
    where = "/".join([*parent, parts[-1]]).strip("/")
    if member.issym() or member.islnk():
        problem = _link_problem(member, parent, links)
        if problem:
            return problem, where
    return "", where


def _link_problem(member: tarfile.TarInfo, parent: list[str], links: dict[str, str]) -> str:
    target = member.linkname
    kind = "symlink" if member.issym() else "hardlink"
    if target.startswith("/"):
        return f"{kind} to an absolute path ({target})"
    # A symlink is relative to its directory; a hardlink names an archive member.
    base = parent if member.issym() else []
    if _resolve([*base, *target.split("/")], links) is None:
        return f"{kind} pointing outside the tree ({target})"
    return ""


def _resolve(parts: list[str], links: dict[str, str]) -> list[str] | None:
    """Components of `parts` relative to the root after following the archive's symlinks;
    None if that leaves the tree (or loops)."""
    resolved: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is not None:
            hops += 1
            if hops > 40 or target.startswith("/"):
                return None
            resolved.pop()
            todo[:0] = target.split("/")
    return resolved


def _refused(tarball: Path, member: str, reason: str) -> FwgenError:
    return FwgenError(
        f"{tarball}: refusing to extract member {member!r}: {reason}",
        "this tarball is malformed or malicious; nothing from it was kept. "
        "Get it from a trusted source (fwgen fetch verifies the pinned sha256)",
    )


def _top_level(root: Path) -> Path:
    entries = list(root.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return root
