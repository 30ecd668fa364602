"""Shared compile cache benchmark: a cold kernel-only build on "host A", then the same build on
"host B" with an empty local cache and A's results in a shared Redis, side by side in one run.

    python bench/bench_shared_cache.py [--kernel-src DIR] [--variant 6.1] [--work DIR]

Both hosts are build directories on this machine with their own local ccache directories,
both emptied first; what they share is a redis-server started on 127.0.0.1 (a free port) for
the run. Prints each host's wall time, B/A, each host's hit rates and what Redis holds. The
kernel source defaults to Debian's linux-source-6.1, unpacked once into the work directory
(default /var/tmp/fwgen-bench-shared-cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fwgen import ccache, log  # noqa: E402
from fwgen.board import load_board  # noqa: E402
from fwgen.kernel import build_kernel_only  # noqa: E402
from tests.rootfs import make_busybox_rootfs  # noqa: E402
from tests.test_ccache import redis_server  # noqa: E402

DEBIAN_LINUX_61 = Path("/usr/src/linux-source-6.1.tar.xz")


def kernel_source(work: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    tree = work / "linux-6.1"
    if not (tree / "Makefile").is_file():
        if not DEBIAN_LINUX_61.is_file():
            raise SystemExit(f"{DEBIAN_LINUX_61} is missing: apt-get install linux-source-6.1")
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        subprocess.run(
            ["tar", "-xf", str(DEBIAN_LINUX_61), "-C", str(tree), "--strip-components=1"],
            check=True,
        )
    return tree


def redis(port: int, *words: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *words], capture_output=True, text=True, check=True
    ).stdout


def build_host(name: str, work: Path, remote, variant: str, src: Path, rootfs: Path):
    """One host's build from an empty local cache: (seconds, ccache statistics)."""
    local = work / f"{name}-ccache"
    output = work / name
    for path in (local, output):
        shutil.rmtree(path, ignore_errors=True)
    os.environ["CCACHE_DIR"] = str(local)
    start = time.monotonic()
    images = build_kernel_only(
        load_board("vexpress"),
        variant,
        rootfs=rootfs,
        output=output,
        kernel_src=str(src),
        ccache_remote=remote,
    )
    seconds = time.monotonic() - start
    return seconds, ccache.read_stats(images.parent / "ccache-stats.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-src", help="a kernel tree (default: Debian's 6.1 source)")
    parser.add_argument("--variant", default="6.1")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/fwgen-bench-shared-cache"))
    args = parser.parse_args()
    if not (shutil.which("ccache") and shutil.which("redis-server")):
        raise SystemExit("needs ccache and redis-server (Debian packages)")
    log.configure(quiet=True)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    src = kernel_source(work, args.kernel_src)
    rootfs = make_busybox_rootfs(work / "rootfs")
    with redis_server(work) as port:
        remote = ccache.resolve(f"redis://127.0.0.1:{port}")
        a_time, a = build_host("host-a", work, remote, args.variant, src, rootfs)
        stored = redis(port, "info", "memory")
        keys = int(redis(port, "dbsize").strip())
        b_time, b = build_host("host-b", work, remote, args.variant, src, rootfs)
    used = next(
        int(line.split(":")[1]) for line in stored.splitlines() if line.startswith("used_memory:")
    )
    cpus = os.cpu_count()
    print(f"shared compile cache, kernel-only {args.variant} build, {cpus} CPUs, one run:")
    print(f"  host A (cold, fills redis): {a_time:7.1f} s  {a.summary(remote)}")
    print(f"  host B (empty local cache): {b_time:7.1f} s  {b.summary(remote)}")
    print(f"  B / A wall time: {b_time / a_time:.2f}")
    print(f"  redis after A: {keys} keys, used_memory {used / 1024**2:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
