"""Smoke benchmark: QEMU start to smoke verdict vs a bare QEMU boot to the login prompt.

    .venv/bin/python bench/bench_smoke.py --images DIR        # a complete images directory
    .venv/bin/python bench/bench_smoke.py --kernel-dir DIR    # zImage + dtb (+ modules): the
                                                              # busybox test rootfs is added

(--kernel-dir defaults to $FWGEN_TEST_IMAGES_61.) Both runs use the same QEMU command line
(fwgen.qemu.command_line); rounds alternate bare / smoke so host load hits both alike.
  bare:  from starting QEMU to "login:" on the serial console, then QEMU is killed;
  smoke: fwgen.smoke.run from start to verdict (boot, login, every check, clean poweroff).
Reported: median and minimum of each, their ratio (goal: smoke <= 1.5 x bare), and where
the smoke time goes (median per phase).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fwgen import qemu, smoke, smoke_report  # noqa: E402
from fwgen.board import load_board  # noqa: E402
from fwgen.console import Console, Deadline  # noqa: E402


def bare_boot(board, images: qemu.Images, log_dir: Path, multiplier: float) -> float:
    with open(log_dir / "bare-console.log", "w") as log, qemu.prepared_root(images) as sd:
        argv = qemu.command_line(board, images, sd, smoke=True)
        started = time.monotonic()
        with qemu.QemuProcess(argv, console_log=log, stderr_path=log_dir / "bare-stderr.log") as c:
            deadline = Deadline(board.smoke.login.timeout * multiplier)
            Console(c).expect([board.smoke.login.prompt], deadline, "the login prompt")
            return time.monotonic() - started


def smoke_run(board, images: qemu.Images, log_dir: Path, multiplier: float):
    report = smoke.run(board, images, multiplier=multiplier, log_dir=log_dir)
    if not report.passed:
        lines = [smoke_report.format_result(r) for r in report.results]
        raise SystemExit(
            "smoke failed:\n" + "\n".join(lines) + "\n" + smoke_report.format_summary(report)
        )
    return report


def _images(args: argparse.Namespace, board, work: Path) -> qemu.Images:
    if args.images:
        return qemu.find_images(board, args.images)
    kernel_dir = args.kernel_dir or os.environ.get("FWGEN_TEST_IMAGES_61")
    if not kernel_dir:
        raise SystemExit("give --images DIR or --kernel-dir DIR (or set FWGEN_TEST_IMAGES_61)")
    from tests.rootfs import make_busybox_rootfs, make_images

    rootfs = make_busybox_rootfs(work / "rootfs")
    return qemu.find_images(board, make_images(work / "images", Path(kernel_dir), rootfs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path)
    parser.add_argument("--kernel-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout-multiplier", type=float, default=1.0)
    parser.add_argument(
        "--poweroff", metavar="COMMAND", help="replace the recipe's poweroff command (a what-if)"
    )
    args = parser.parse_args()
    board = load_board("vexpress")
    if args.poweroff:
        changed = dataclasses.replace(
            board.smoke, poweroff=dataclasses.replace(board.smoke.poweroff, run=args.poweroff)
        )
        name = board.name
        board = dataclasses.replace(board, smoke=changed)
        object.__setattr__(board, "name", name)
    with tempfile.TemporaryDirectory(prefix="fwgen-bench-smoke-") as tmp:
        work = Path(tmp)
        images = _images(args, board, work)
        bare: list[float] = []
        total: list[float] = []
        phases: dict[str, list[float]] = {}
        for i in range(args.rounds):
            bare.append(bare_boot(board, images, work, args.timeout_multiplier))
            report = smoke_run(board, images, work / f"smoke-{i}", args.timeout_multiplier)
            total.append(report.duration)
            checks = sum(r.duration for r in report.results[1:-1])
            for name, value in (
                ("boot to login", report.results[0].duration),
                (f"{len(report.results) - 2} checks", checks),
                ("clean poweroff", report.results[-1].duration),
            ):
                phases.setdefault(name, []).append(value)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"smoke benchmark: {images.directory} (kernel {images.variant}, {images.root}), "
            f"{args.rounds} rounds, host load average {load}"
        )
        print(f"{'':24}{'median':>9}{'min':>9}   runs")
        for name, values in (("bare boot to login", bare), ("smoke to verdict", total)):
            runs = " ".join(f"{v:.2f}" for v in values)
            print(f"{name:24}{statistics.median(values):8.2f}s{min(values):8.2f}s   {runs}")
        ratio = statistics.median(total) / statistics.median(bare)
        print(f"{'ratio smoke / bare':24}{ratio:8.2f}x   (goal <= 1.50x)")
        shown = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in phases.items())
        print(f"smoke phases (median): {shown}")
        print(f"poweroff command: {board.smoke.poweroff.run!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
