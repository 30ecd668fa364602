"""The shared compile cache settings, against real ccache and a real redis-server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwgen import ccache
from fwgen.errors import FwgenError

needs_ccache = pytest.mark.skipif(not shutil.which("ccache"), reason="ccache is not installed")
needs_redis = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="redis-server is not installed (Debian: redis-server)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on 127.0.0.1 and a free port, stopped at the end."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _redis_keys(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
        return int(s.recv(64).decode().strip().lstrip(":"))


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "storage"),
    [
        (
            "redis://cache.example.org:6379",
            "redis://cache.example.org:6379|connect-timeout=500|operation-timeout=5000",
        ),
        (
            "http://cache.example.org/ccache/",
            "http://cache.example.org/ccache|connect-timeout=500|operation-timeout=5000",
        ),
        ("file:///mnt/ccache", "file:///mnt/ccache"),
    ],
)
def test_each_url_form_becomes_ccache_remote_storage(url, storage):
    remote = ccache.resolve(url)
    assert remote is not None and remote.storage() == storage
    assert ccache.resolve(url, read_only=True).storage() == storage + "|read-only=true"


def test_the_environment_names_the_remote_and_what_makes_objects_shareable(tmp_path):
    remote = ccache.resolve("redis://h:1")
    env = ccache.environment(remote, base_dir=tmp_path, stats_log=tmp_path / "s.log")
    assert env == {
        "CCACHE_BASEDIR": str(tmp_path.resolve()),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_STATSLOG": str(tmp_path / "s.log"),
        "CCACHE_REMOTE_STORAGE": remote.storage(),
    }
    assert "CCACHE_REMOTE_STORAGE" not in ccache.environment(
        None, base_dir=tmp_path, stats_log=tmp_path / "s.log"
    )


def test_the_environment_variables_are_the_fallback(monkeypatch):
    assert ccache.resolve(None) is None
    monkeypatch.setenv("FWGEN_CCACHE_REMOTE", "redis://h:6379")
    monkeypatch.setenv("FWGEN_CCACHE_REMOTE_READ_ONLY", "1")
    assert ccache.resolve(None) == ccache.Remote("redis://h:6379", read_only=True)
    assert ccache.resolve("file:///x").url == "file:///x"  # the option wins


@pytest.mark.parametrize(
    "bad",
    [
        "https://h/x",
        "redis:///nohost",
        "ftp://h/x",
        "file://relative/x",
        "redis://h|read-only=1",
        "/mnt/ccache",
    ],
)
def test_bad_urls_are_user_errors_with_an_example(bad):
    with pytest.raises(FwgenError) as e:
        ccache.resolve(bad)
    assert e.value.hint and "://" in e.value.hint and e.value.exit_code == 2


def test_read_only_without_a_remote_is_an_error():
    with pytest.raises(FwgenError, match="no remote is set"):
        ccache.resolve(None, read_only=True)


def test_a_password_is_not_shown():
    remote = ccache.resolve("redis://default:s3cret@h:6379")
    assert "s3cret" not in remote.describe()


# --- against real ccache and redis ----------------------------------------------------------


def _compile(tmp_path: Path, host: str, remote: ccache.Remote | None) -> ccache.Stats:
    """Compile the same two files on one "host" (its own build dir and local cache)."""
    build = tmp_path / host / "build"
    build.mkdir(parents=True)
    for name, body in (
        ("a.c", "int a(void) { return 1; }\n"),
        ("b.c", "int b(int x) { return x; }\n"),
    ):
        (build / name).write_text(body)
    log = tmp_path / host / "stats.log"
    env = {
        **os.environ,
        **ccache.environment(remote, base_dir=build, stats_log=log),
        "CCACHE_DIR": str(tmp_path / host / "local-cache"),
    }
    for name in ("a.c", "b.c"):
        subprocess.run(["ccache", "gcc", "-c", name], cwd=build, env=env, check=True)
    return ccache.read_stats(log)


@needs_ccache
@needs_redis
def test_a_second_host_hits_the_first_hosts_results_in_redis(tmp_path):
    with redis_server(tmp_path) as port:
        remote = ccache.resolve(f"redis://127.0.0.1:{port}")
        assert remote.check() == (True, "PONG")
        a = _compile(tmp_path, "host-a", remote)
        assert (a.calls, a.misses, a.remote_hits) == (2, 2, 0)
        assert _redis_keys(port) > 0
        b = _compile(tmp_path, "host-b", remote)
        assert (b.calls, b.remote_hits, b.local_hits, b.misses) == (2, 2, 0, 0)
        assert "remote hits 2 (100%)" in b.summary(remote)


@needs_ccache
@needs_redis
def test_read_only_hosts_read_but_never_write(tmp_path):
    with redis_server(tmp_path) as port:
        remote = ccache.resolve(f"redis://127.0.0.1:{port}", read_only=True)
        first = _compile(tmp_path, "pr-1", remote)
        assert first.misses == 2 and _redis_keys(port) == 0


@needs_ccache
def test_a_remote_that_is_down_fails_nothing_and_is_reported(tmp_path):
    remote = ccache.resolve(f"redis://127.0.0.1:{_free_port()}")
    ok, detail = remote.check(timeout=1)
    assert not ok and "Refused" in detail
    stats = _compile(tmp_path, "lonely", remote)
    assert stats.misses == 2 and stats.remote_errors == 2
    assert "failed 2 time(s): those compiles ran locally" in stats.summary(remote)


def test_a_file_remote_must_exist_and_be_writable_unless_read_only(tmp_path):
    assert not ccache.resolve(f"file://{tmp_path / 'nope'}").check()[0]
    assert ccache.resolve(f"file://{tmp_path}").check() == (True, "directory present")


@needs_redis
def test_doctor_says_whether_the_remote_answers_and_never_fails_on_it(tmp_path, capsys):
    from fwgen.cli import main

    with redis_server(tmp_path) as port:
        main(
            [
                "doctor",
                "vexpress",
                "--stage",
                "smoke",
                "--ccache-remote",
                f"redis://127.0.0.1:{port}",
            ]
        )
        out = capsys.readouterr().out
        assert (
            f"ok      remote compile cache redis://127.0.0.1:{port} (read-write): reachable (PONG)"
            in out
        )
    down = f"redis://127.0.0.1:{_free_port()}"
    before = main(["doctor", "vexpress", "--stage", "smoke"])
    capsys.readouterr()
    assert main(["doctor", "vexpress", "--stage", "smoke", "--ccache-remote", down]) == before
    out = capsys.readouterr().out
    assert f"WARNING remote compile cache {down} (read-write): NOT reachable" in out
    assert "builds go on with the local cache only" in out


def test_a_build_warns_about_a_remote_that_is_down_and_goes_on(caplog):
    down = ccache.resolve(f"redis://127.0.0.1:{_free_port()}", read_only=True)
    assert ccache.announce(down) is False
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "(read-only): NOT reachable (ConnectionRefusedError" in record.getMessage()
