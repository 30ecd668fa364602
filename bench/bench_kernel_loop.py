"""Kernel loop benchmark: a one-line change to the feature patch, then build --kernel-only and
smoke to a verdict, with a warm tree and ccache; a build with nothing changed; and the same two
steps done by hand with Kbuild in the same tree, side by side in one run.

    python bench/bench_kernel_loop.py --kernel-src DIR [--variant 6.1] [--work DIR] [--cold]

The work directory keeps the build between runs (default: /var/tmp/fwgen-bench-kernel-loop).
The first run there builds once to warm the tree and ccache (not counted). Then:
1. patch edit: one comment line of the mykthread patch changed; `fwgen build --kernel-only`
   (goal: build + smoke verdict <= 60 s on 2 cores);
2. no-op: the same build again (goal: "up to date" in <= 5 s);
3. plain Kbuild in the same tree, for comparison: `touch` the file the edit is in and
   `make zImage dtbs modules`; then the same make with nothing changed. (Kbuild alone makes
   no modules package, initramfs or images: fwgen's figures include them.)
--cold also builds the same inputs in a fresh directory with ccache disabled.
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

from fwgen import ccache, layout, log, qemu, smoke, smoke_report  # noqa: E402
from fwgen.board import load_board  # noqa: E402
from fwgen.kbuild import KbuildRunner  # noqa: E402
from fwgen.kernel import build_kernel_only  # noqa: E402
from fwgen.toolchain import find as find_toolchain  # noqa: E402
from tests.rootfs import make_busybox_rootfs  # noqa: E402

# The edited line: a message of the feature's last patch that no later patch has as context
# and no smoke check reads, so the series still applies and the verdict stays the same. The
# message is code (a string the compiler emits), so the object really changes.
EDITED = re.compile(r'^\+(\s*pr_err\("mykthread)(?: \(bench edit \d+\))?(: cannot register )', re.M)


def edit_feature_patch(series: Path, round_no: int) -> tuple[str, str]:
    """Change one added line of the mykthread patches; returns the new line and the file of
    the kernel tree it is in."""
    for patch in sorted(series.glob("*.patch")):
        text = patch.read_text()
        match = EDITED.search(text)
        if match:
            break
    else:
        raise SystemExit(f"{series}: no patch has the line {EDITED.pattern}")
    new = f"+{match.group(1)} (bench edit {round_no}){match.group(2)}"
    patch.write_text(text[: match.start()] + new + text[match.end() :])
    file = re.findall(r"^\+\+\+ b/(\S+)", text[: match.start()], re.M)[-1]
    line = (text[: match.start()] + new + text[match.end() :])[match.start() :].splitlines()[0]
    return line, file


def timed_build(board, name, kernel, rootfs: Path, output: Path, src: str) -> tuple[Path, float]:
    start = time.monotonic()
    images = build_kernel_only(
        board, name, rootfs=rootfs, output=output, kernel_src=src, variant=kernel
    )
    return images, time.monotonic() - start


def timed_loop(board, name, kernel, rootfs: Path, output: Path, src: str) -> tuple[float, float]:
    start = time.monotonic()
    images, built = timed_build(board, name, kernel, rootfs, output, src)
    report = smoke.run(board, qemu.find_images(board, images))
    if not report.passed:
        raise SystemExit(f"smoke failed: {smoke_report.format_summary(report)}")
    return built, time.monotonic() - start


def timed_kbuild(board, build: layout.KernelOnlyBuild) -> float:
    """`make zImage dtbs modules` in fwgen's kept tree, as a developer would run it."""
    work = build.work
    runner = KbuildRunner(
        build.src,
        build.obj,
        board.arch,
        find_toolchain(None),
        os.cpu_count() or 1,
        work / "bench-kbuild.log",
        ccache.environment(None, base_dir=work, stats_log=work / "bench-ccache-stats.log"),
    )
    start = time.monotonic()
    runner.make("zImage", "dtbs", "modules", what="kbuild")
    return time.monotonic() - start


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
    line, file = edit_feature_patch(series, rounds)
    built, total = timed_loop(board, args.variant, kernel, rootfs, warm_dir, args.kernel_src)
    _, noop = timed_build(board, args.variant, kernel, rootfs, warm_dir, args.kernel_src)

    build = layout.kernel_only(warm_dir, board.name, args.variant)
    (build.src / file).touch()
    kbuild_edit = timed_kbuild(board, build)
    kbuild_noop = timed_kbuild(board, build)
    print(
        f"kernel loop benchmark, linux {args.variant}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  one-line change to the feature patch ({file}): {line.strip()}")
    print(
        f"  patch edit: fwgen build {built:6.1f} s, build + smoke verdict {total:6.1f} s "
        f"(goal <= 60 s); Kbuild alone after touching {file}: {kbuild_edit:6.1f} s"
    )
    print(
        f"  no-op:      fwgen build {noop:6.1f} s (goal <= 5 s); Kbuild alone: "
        f"{kbuild_noop:6.1f} s; fwgen / Kbuild {noop / kbuild_noop:.2f}"
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
