"""Two hosts, one compile cache (e2e): real kernel-only 6.1 builds through a real redis-server.

"Host A" and "host B" are two build directories with two local ccache directories on this
machine; what they share is only the redis-server the test starts on 127.0.0.1 (a free port)
and stops at the end. Host A is the long-lived developer machine: its local cache is this
session's own (the one the e2e kernel builds filled, which this test asks for first, so CI
compiles the kernel once, not twice) and it shares its local hits too (ccache's own
CCACHE_RESHARE), so the empty redis fills on every run. Host B starts with an empty local
cache and must get at least 90% of its compiler calls from redis, and its images must pass
every smoke check. A third host loses the remote in the middle of its build: the build still
succeeds, and the statistics say what happened.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fwgen import ccache, qemu, smoke, smoke_report
from fwgen.board import load_board
from fwgen.kernel import build_kernel_only
from tests.rootfs import make_busybox_rootfs
from tests.test_ccache import redis_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (shutil.which("ccache") and shutil.which("redis-server")),
        reason="needs ccache and redis-server (Debian packages)",
    ),
]


def _host(
    monkeypatch, root: Path, name: str, local: Path | None, remote, src: Path, rootfs: Path
) -> tuple[Path, ccache.Stats]:
    if local is not None:  # None: this session's own local cache
        monkeypatch.setenv("CCACHE_DIR", str(local))
    images = build_kernel_only(
        load_board("vexpress"),
        "6.1",
        rootfs=rootfs,
        output=root / name,
        kernel_src=str(src),
        ccache_remote=remote,
    )
    stats = ccache.read_stats(images.parent / "ccache-stats.log")
    print(f"{name}: {stats.summary(remote)}")
    return images, stats


def test_host_b_builds_from_host_as_results_and_a_lost_remote_fails_nothing(
    kernel_builds, linux61_src, tmp_path, monkeypatch
):
    kernel_builds("6.1")  # host A's history: its local cache has seen this kernel
    root = tmp_path / "hosts"
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    board = load_board("vexpress")
    with redis_server(tmp_path) as port:
        remote = ccache.resolve(f"redis://127.0.0.1:{port}")
        monkeypatch.setenv("CCACHE_RESHARE", "1")
        _, a = _host(monkeypatch, root, "host-a", None, remote, linux61_src, rootfs)
        monkeypatch.delenv("CCACHE_RESHARE")
        assert a.calls > 500 and a.remote_errors == 0

        images_b, b = _host(
            monkeypatch, root, "host-b", tmp_path / "cache-b", remote, linux61_src, rootfs
        )
        # B's local cache started empty: its only local hits are objects this build compiles
        # twice (the same source and flags).
        assert b.remote_hits >= 0.9 * b.calls, b
        assert b.misses <= 0.05 * b.calls, b
        report = smoke.run(board, qemu.find_images(board, images_b), log_dir=tmp_path / "smoke")
        assert report.passed, "\n".join(smoke_report.format_result(r) for r in report.results)

        # Host C: the remote goes away when most of the calls are done (the rest compile here).
        log = root / "host-c" / "vexpress-6.1-kernel" / "ccache-stats.log"
        stop = threading.Event()

        def kill_redis_midway() -> None:
            while not stop.is_set():
                if log.exists() and log.read_text().count("# ") > b.calls * 0.8:
                    subprocess.run(
                        ["redis-cli", "-p", str(port), "shutdown", "nosave"],
                        capture_output=True,
                        check=False,
                    )
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_redis_midway, daemon=True)
        killer.start()
        try:
            images_c, c = _host(
                monkeypatch, root, "host-c", tmp_path / "cache-c", remote, linux61_src, rootfs
            )
        finally:
            stop.set()
            killer.join(5)
        assert not remote.check(timeout=1)[0], "redis was not stopped during the build"
        assert c.remote_hits > 0 and c.remote_errors > 0, c
        assert (images_c / "zImage").is_file()
