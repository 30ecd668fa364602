"""Kernel loop benchmark: a one-line change to the feature patch, then build --kernel-only and
smoke to a verdict, with a warm tree and ccache; optionally against a cold build.

    python bench/bench_kernel_loop.py --kernel-src DIR [--variant 6.1] [--work DIR] [--cold]

The work directory keeps the build between runs (default: /var/tmp/fwgen-bench-kernel-loop).
The first run there builds once to warm the tree and ccache (not counted). --cold also builds
the same inputs in a fresh directory with ccache disabled, side by side, for the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fwgen import log, qemu, smoke  # noqa: E402
from fwgen.board import load_board  # noqa: E402
from fwgen.kernel import build_kernel_only  # noqa: E402
from tests.rootfs import make_busybox_rootfs  # noqa: E402


def edit_feature_patch(series: Path, round_no: int) -> str:
    """Change one added comment line of the mykthread patch; returns the new line."""
    (patch,) = [p for p in series.glob("*.patch") if "mykthread" in p.name]
    text = patch.read_text()
    match = re.search(r"^\+(\s*/\* minimal command environment).*?\*/$", text, re.M)
    if not match:
        raise SystemExit(f"{patch}: no '/* minimal command environment' line to edit")
    line = f"+{match.group(1)} (benchmark edit {round_no}) */"
    patch.write_text(text[: match.start()] + line + text[match.end() :])
    return line


def timed_loop(board, name, kernel, rootfs: Path, output: Path, src: str) -> tuple[float, float]:
    start = time.monotonic()
    images = build_kernel_only(
        board, name, rootfs=rootfs, output=output, kernel_src=src, variant=kernel
    )
    built = time.monotonic() - start
    report = smoke.run(board, qemu.find_images(board, images))
    if not report.passed:
        raise SystemExit(f"smoke failed: {smoke.format_summary(report)}")
    return built, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-src", required=True)
    parser.add_argument("--variant", default="6.1")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/fwgen-bench-kernel-loop"))
    parser.add_argument("--cold", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    log.configure(quiet=True)

    board = load_board("vexpress")
    args.work.mkdir(parents=True, exist_ok=True)
    series = args.work / "series"
    if not series.exists():
        shutil.copytree(board.kernel(args.variant).patches_dir(), series)
    kernel = dataclasses.replace(board.kernel(args.variant), patches=str(series.resolve()))
    rootfs = args.work / "rootfs"
    if not rootfs.exists():
        make_busybox_rootfs(rootfs)
    warm_dir = args.work / "warm"
    if not (warm_dir / f"{board.name}-{args.variant}-kernel" / "images").exists():
        print("warming the tree and ccache (not counted) ...", flush=True)
        timed_loop(board, args.variant, kernel, rootfs, warm_dir, args.kernel_src)

    rounds = len(list(args.work.glob("round-*"))) + 1
    (args.work / f"round-{rounds}").touch()
    line = edit_feature_patch(series, rounds)
    built, total = timed_loop(board, args.variant, kernel, rootfs, warm_dir, args.kernel_src)
    print(
        f"kernel loop benchmark, linux {args.variant}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  one-line change to the feature patch: {line.strip()}")
    print(
        f"  warm (kept work dir, ccache): build {built:6.1f} s, build + smoke verdict "
        f"{total:6.1f} s (goal < 120 s)"
    )
    if args.cold:
        cold_dir = args.work / "cold"
        shutil.rmtree(cold_dir, ignore_errors=True)
        os.environ["CCACHE_DISABLE"] = "1"
        cold_built, cold_total = timed_loop(
            board, args.variant, kernel, rootfs, cold_dir, args.kernel_src
        )
        del os.environ["CCACHE_DISABLE"]
        print(
            f"  cold (fresh dir, no ccache):   build {cold_built:6.1f} s, build + smoke verdict "
            f"{cold_total:6.1f} s"
        )
        print(f"  warm / cold: {total / cold_total:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
