"""Verified downloads against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Every test ends in a verified file or a clear FwgenError, and never in a wrong or partial file
under the final name.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwgen import download, paths, sources
from fwgen.board import Download
from fwgen.errors import FwgenError
from tests.test_sources_server import FaultServer, Reply, running

REPO = Path(__file__).resolve().parent.parent
DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several chunks, odd length
SHA = hashlib.sha256(DATA).hexdigest()
NAME = "pkg-1.0.tar.xz"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small backoff and timeouts; loopback never goes through a proxy."""
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    monkeypatch.setattr(download, "BACKOFF_MAX", 0.05)
    monkeypatch.setattr(download, "CONNECT_TIMEOUT", 5.0)
    monkeypatch.setattr(download, "READ_TIMEOUT", 5.0)
    monkeypatch.setattr(download, "ATTEMPTS", 3)
    monkeypatch.setattr(download, "CHUNK_SIZE", 64 * 1024)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with running() as s:
        yield s


def pin(*urls: str, file: str = NAME, sha256: str = SHA) -> Download:
    return Download(file=file, sha256=sha256, urls=tuple(urls))


def final_path() -> Path:
    return paths.cache_dir() / "dl" / NAME


def part_path() -> Path:
    return final_path().with_name(NAME + ".part")


def assert_verified(path: Path) -> None:
    assert path == final_path()
    assert path.read_bytes() == DATA
    assert not part_path().exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the happy paths -------------------------------------------------------------------------


def test_download_is_verified_and_cached(server: FaultServer) -> None:
    url = server.route("/a/" + NAME, DATA)
    (path,) = sources.fetch([pin(url)])
    assert_verified(path)
    assert sources.cached_path(pin(url)) == path
    # A second fetch is a cache hit: verified from disk, no request.
    assert sources.fetch([pin(url)]) == [path]
    assert len(server.requests_for("/a/" + NAME)) == 1


def test_corrupt_cached_file_is_replaced(server: FaultServer) -> None:
    url = server.route("/a/" + NAME, DATA)
    final_path().parent.mkdir(parents=True)
    final_path().write_bytes(b"bit rot")
    (path,) = sources.fetch([pin(url)])
    assert_verified(path)
    assert len(server.requests_for("/a/" + NAME)) == 1


def test_paths_come_back_in_order(server: FaultServer) -> None:
    other = b"other content"
    first = server.route("/x/one.tar.gz", DATA)
    second = server.route("/x/two.tar.gz", other)
    got = sources.fetch(
        [
            pin(first, file="one.tar.gz"),
            pin(second, file="two.tar.gz", sha256=hashlib.sha256(other).hexdigest()),
        ]
    )
    assert [p.name for p in got] == ["one.tar.gz", "two.tar.gz"]
    assert got[1].read_bytes() == other


# --- faults that end in a verified file ------------------------------------------------------


def test_connection_reset_mid_body_resumes(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA, Reply("reset", after=len(DATA) // 2))
    assert_verified(sources.fetch([pin(url)])[0])
    first, second = server.requests_for(path)
    assert first.range is None
    # What survived the reset depends on timing; the resume asks for exactly the rest.
    kept = int((second.range or "bytes=0-").removeprefix("bytes=").rstrip("-"))
    assert kept <= len(DATA) // 2
    assert second.body_bytes == len(DATA) - kept


def test_short_body_resumes_with_only_the_missing_bytes(server: FaultServer) -> None:
    path = "/a/" + NAME
    cut = 300_000
    url = server.route(path, DATA, Reply("short", after=cut))
    assert_verified(sources.fetch([pin(url)])[0])
    first, second = server.requests_for(path)
    assert first.body_bytes == cut
    assert second.range == f"bytes={cut}-"
    assert second.status == 206
    assert second.body_bytes == len(DATA) - cut
    assert first.body_bytes + second.body_bytes == len(DATA)


def test_500_then_success(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA, Reply("status", status=500), Reply("status", status=503))
    assert_verified(sources.fetch([pin(url)])[0])
    assert [r.status for r in server.requests_for(path)] == [500, 503, 200]


@pytest.mark.parametrize("status", [404, 403])
def test_404_and_403_are_not_retried_the_next_url_is_used(server: FaultServer, status: int) -> None:
    bad = server.route("/gone/" + NAME, DATA, default=Reply("status", status=status))
    good = server.route("/b/" + NAME, DATA)
    assert_verified(sources.fetch([pin(bad, good)])[0])
    assert len(server.requests_for("/gone/" + NAME)) == 1


def test_drip_slower_than_read_timeout_times_out_and_next_url_is_used(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    drip = server.route("/drip/" + NAME, DATA, default=Reply("drip", interval=0.6))
    good = server.route("/b/" + NAME, DATA)
    assert_verified(sources.fetch([pin(drip, good)])[0])
    assert len(server.requests_for("/drip/" + NAME)) == 2  # timeouts are retried


def test_drip_alone_ends_in_a_read_timeout_error(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    drip = server.route("/drip/" + NAME, DATA, default=Reply("drip", interval=0.6))
    with pytest.raises(FwgenError) as e:
        sources.fetch([pin(drip)])
    assert f"{drip}: read timed out" in str(e.value)
    assert not final_path().exists()


def test_drip_just_inside_the_read_timeout_is_caught_as_a_stall(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One byte every 20 ms never trips a 5 s socket timeout; the low-speed guard catches it.
    monkeypatch.setattr(download, "LOW_SPEED_TIME", 0.3)
    monkeypatch.setattr(download, "LOW_SPEED_LIMIT", 10_000)
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    drip = server.route("/drip/" + NAME, DATA, default=Reply("drip", interval=0.02))
    good = server.route("/b/" + NAME, DATA)
    with pytest.raises(FwgenError) as e:
        sources.fetch([pin(drip)])
    assert f"{drip}: stalled" in str(e.value)
    assert not final_path().exists()
    # The bytes dripped so far are kept and the next URL finishes the file.
    assert_verified(sources.fetch([pin(drip, good)])[0])


def test_server_ignoring_range_restarts_cleanly(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA, Reply("short", after=200_000), Reply("ignore_range"))
    assert_verified(sources.fetch([pin(url)])[0])
    first, second = server.requests_for(path)
    assert second.range == "bytes=200000-"
    assert second.status == 200 and second.body_bytes == len(DATA)


def test_stale_part_and_a_server_ignoring_range(server: FaultServer) -> None:
    url = server.route("/a/" + NAME, DATA, default=Reply("ignore_range"))
    part_path().parent.mkdir(parents=True)
    part_path().write_bytes(b"x" * 5000)
    assert_verified(sources.fetch([pin(url)])[0])


def test_wrong_content_range_start_is_not_trusted(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA, Reply("short", after=1000), Reply("bad_range"))
    assert_verified(sources.fetch([pin(url)])[0])
    statuses = [(r.range, r.status) for r in server.requests_for(path)]
    assert statuses == [(None, 200), ("bytes=1000-", 206), (None, 200)]


def test_resumed_garbage_is_downloaded_again_from_zero(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA)
    part_path().parent.mkdir(parents=True)
    part_path().write_bytes(b"not the right prefix")
    assert_verified(sources.fetch([pin(url)])[0])
    assert [r.range for r in server.requests_for(path)] == ["bytes=20-", None]


def test_a_whole_part_file_is_finished_without_downloading(server: FaultServer) -> None:
    path = "/a/" + NAME
    url = server.route(path, DATA)
    part_path().parent.mkdir(parents=True)
    part_path().write_bytes(DATA)  # interrupted between the last byte and the rename
    assert_verified(sources.fetch([pin(url)])[0])
    assert [r.status for r in server.requests_for(path)] == [416]


# --- faults that end in a clear error --------------------------------------------------------


def test_sha256_mismatch_names_everything_and_keeps_nothing(server: FaultServer) -> None:
    evil = server.route("/evil/" + NAME, b"definitely not the pinned content")
    upstream = server.route("/b/" + NAME, DATA)
    with pytest.raises(FwgenError) as e:
        sources.fetch([pin(evil, upstream)])
    message = str(e.value)
    assert "sha256 mismatch" in message
    assert NAME in message and evil in message
    assert SHA in message
    assert hashlib.sha256(b"definitely not the pinned content").hexdigest() in message
    assert not final_path().exists() and not part_path().exists()
    # Wrong content is an alarm, not a glitch: fwgen stops instead of shopping around.
    assert server.requests_for("/b/" + NAME) == []


def test_every_url_failing_lists_each_with_its_reason(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    gone = server.route("/gone/" + NAME, DATA, default=Reply("status", status=404))
    broken = server.route("/broken/" + NAME, DATA, default=Reply("status", status=500))
    refused = f"http://127.0.0.1:{free_port()}/{NAME}"
    with pytest.raises(FwgenError) as e:
        sources.fetch([pin(gone, broken, refused)])
    message = str(e.value)
    assert f"could not download {NAME}" in message
    assert f"{gone}: HTTP 404" in message
    assert f"{broken}: HTTP 500" in message and "gave up after 2 attempts" in message
    assert f"{refused}: connection failed: Connection refused" in message
    assert len(server.requests_for("/broken/" + NAME)) == 2
    assert not final_path().exists()


def test_unsupported_url_scheme_is_a_failure_not_a_crash(server: FaultServer) -> None:
    good = server.route("/b/" + NAME, DATA)
    assert_verified(sources.fetch([pin("ftp://127.0.0.1/" + NAME, good)])[0])


# --- mirrors -----------------------------------------------------------------------------------


def test_mirror_is_tried_before_upstream(server: FaultServer) -> None:
    mirrored = server.route("/mirror/" + NAME, DATA)
    upstream = server.route("/upstream/" + NAME, DATA)
    assert mirrored == f"{server.base}/mirror/{NAME}"
    assert_verified(sources.fetch([pin(upstream)], mirrors=[server.base + "/mirror/"])[0])
    assert len(server.requests_for("/mirror/" + NAME)) == 1
    assert server.requests_for("/upstream/" + NAME) == []


def test_env_mirrors_come_after_given_ones_and_missing_files_fall_through(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.route("/m2/" + NAME, DATA)
    upstream = server.route("/upstream/" + NAME, DATA)
    monkeypatch.setenv("FWGEN_MIRROR", f"{server.base}/m1, {server.base}/m2 {server.base}/m3")
    assert_verified(sources.fetch([pin(upstream)], mirrors=[server.base + "/m0"])[0])
    asked = [r.path for r in server.log]
    assert asked == [f"/m0/{NAME}", f"/m1/{NAME}", f"/m2/{NAME}"]


def test_mirror_must_be_http_or_file() -> None:
    with pytest.raises(FwgenError, match="neither an http"):
        sources.fetch([pin("http://127.0.0.1:9/x")], mirrors=["/srv/mirror"])


def test_a_file_url_mirror_is_copied_and_verified(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror dir"
    mirror.mkdir()
    (mirror / NAME).write_bytes(DATA)
    url = "file://" + urllib.parse.quote(str(mirror))
    got = sources.fetch([pin("http://127.0.0.1:9/never/" + NAME)], mirrors=[url])[0]
    assert_verified(got)
    (mirror / NAME).write_bytes(DATA + b"x")
    final_path().unlink()
    with pytest.raises(FwgenError, match="sha256 mismatch") as e:
        sources.fetch([pin("http://127.0.0.1:9/never/" + NAME)], mirrors=[url])
    assert str(mirror) in str(e.value) or url in str(e.value)
    assert not final_path().exists()


def test_offline_with_a_mirror_uses_the_mirror_and_never_the_upstream_urls(
    server: FaultServer,
) -> None:
    server.route("/mirror/" + NAME, DATA)
    upstream = server.route("/upstream/" + NAME, DATA)
    got = sources.fetch([pin(upstream)], mirrors=[server.base + "/mirror"], offline=True)
    assert_verified(got[0])
    final_path().unlink()
    with pytest.raises(FwgenError) as e:
        sources.fetch([pin(upstream)], mirrors=[server.base + "/empty"], offline=True)
    assert "offline: only the cache and the mirror(s) were tried" in str(e.value)
    assert server.requests_for("/upstream/" + NAME) == []


# --- offline -------------------------------------------------------------------------------------


def test_offline_with_empty_cache_lists_what_is_missing_and_where_to_put_it() -> None:
    other = pin("https://example.org/b.tar.gz", file="b.tar.gz", sha256="1" * 64)
    upstream = pin("https://example.org/a/" + NAME, "https://mirror.example.org/" + NAME)
    with pytest.raises(FwgenError) as e:
        sources.fetch([upstream, other], offline=True)
    text = str(e.value)
    for expected in (NAME, SHA, *upstream.urls, "b.tar.gz", "1" * 64, *other.urls):
        assert expected in text
    assert str(paths.cache_dir() / "dl") in text
    assert e.value.exit_code == 2


def test_offline_from_env_uses_the_verified_cache(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.route("/a/" + NAME, DATA)
    sources.fetch([pin(url)])
    monkeypatch.setenv("FWGEN_OFFLINE", "1")
    assert_verified(sources.fetch([pin(url)])[0])
    final_path().write_bytes(DATA[:-1])  # damaged in the cache: not used, reported missing
    with pytest.raises(FwgenError, match="not in the cache"):
        sources.fetch([pin(url)])
    assert len(server.requests_for("/a/" + NAME)) == 1


def test_offline_env_must_be_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWGEN_OFFLINE", "maybe")
    with pytest.raises(FwgenError, match="FWGEN_OFFLINE"):
        sources.fetch([pin("https://example.org/" + NAME)])


# --- several processes, one cache --------------------------------------------------------------

_CHILD = """
import sys
from fwgen import log, sources
from fwgen.board import Download
log.configure()
name, sha256, url = sys.argv[1:]
print(sources.fetch([Download(file=name, sha256=sha256, urls=(url,))])[0])
"""


def _start_child(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, NAME, SHA, url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _lines(stream) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in stream], daemon=True).start()
    return lines


def test_two_processes_share_one_download(server: FaultServer) -> None:
    gate = threading.Event()
    path = "/a/" + NAME
    url = server.route(path, DATA, Reply("hold", after=len(DATA) // 2, gate=gate))
    first = _start_child(url)
    second = None
    try:
        _wait_for(
            lambda: server.requests_for(path, settle=False),
            "the first process to start downloading",
        )
        second = _start_child(url)
        second_err = _lines(second.stderr)
        seen: list[str] = []

        def second_is_waiting() -> bool:
            while not second_err.empty():
                seen.append(second_err.get())
            return any("waiting for another fwgen process" in ln for ln in seen)

        _wait_for(second_is_waiting, "the second process to wait for the lock")
        gate.set()
        out_first, err_first = first.communicate(timeout=60)
        out_second = second.stdout.read()
        assert second.wait(timeout=60) == 0, seen
    finally:
        gate.set()
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, err_first
    assert out_first.strip() == out_second.strip() == str(final_path())
    assert len(server.requests_for(path)) == 1
    assert_verified(final_path())
    assert sorted(os.listdir(final_path().parent)) == [".locks", NAME]


def test_an_unwritable_part_file_is_a_user_error(server: FaultServer) -> None:
    url = server.route("/a/" + NAME, DATA)
    part_path().mkdir(parents=True)  # something in the way that is not a file
    (part_path() / "x").write_bytes(b"x")
    with pytest.raises(FwgenError, match="cannot write"):
        sources.fetch([pin(url)])
    assert not final_path().exists()


def test_progress_bar_when_enabled(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(download, "progress_disabled", lambda: False)
    url = server.route("/a/" + NAME, DATA, Reply("short", after=300_000))
    assert_verified(sources.fetch([pin(url)])[0])
    err = capsys.readouterr().err
    assert NAME in err and "B/s" in err
    assert "1.00M/1.00M" in err  # the resumed bar counts the bytes kept from before
