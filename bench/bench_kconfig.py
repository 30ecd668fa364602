"""Kernel configuration benchmark: load the Kconfig tree, resolve the requirements, write.

    .venv/bin/python bench/bench_kconfig.py [--rounds 5] [--linux61 DIR|TARBALL]
                                            [--linux40 DIR|TARBALL]

Trees: --linux61 (default $FWGEN_BENCH_LINUX61_SRC, else Debian's
/usr/src/linux-source-6.1.tar.xz) and --linux40 (default $FWGEN_TEST_LINUX40_SRC; skipped
when unset). A tarball is extracted once into a temporary directory, outside the timings.

Figures per kernel, median of the rounds (goal: load + resolve under 3 s):
  load      kconfig.load_tree(): parse Kconfig (for 6.1 this runs the compiler macros);
            also its CPU time, in fwgen's process and in the commands the macros run, which
            depends less than wall time on what else the machine is doing
  resolve   defconfig + board fragment + requirements, verified (vexpress recipe)
  forced    the same with a defconfig that has PROC_FS, PROC_SYSCTL and MODULES off, so the
            resolver has to turn them back on through their controllers
  write     the full .config, atomically
  cli       `python -m fwgen config vexpress --kernel V -o FILE`, wall clock, fresh process
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fwgen import kconfig
from fwgen.board import load_board

DEBIAN_LINUX_61 = Path("/usr/src/linux-source-6.1.tar.xz")
FORCED_OFF = "CONFIG_EXPERT=y\n# CONFIG_PROC_FS is not set\n# CONFIG_PROC_SYSCTL is not set\n"
FORCED_OFF += "# CONFIG_MODULES is not set\n"


@contextlib.contextmanager
def kernel_tree(given: Path) -> Iterator[Path]:
    if given.is_dir():
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="fwgen-bench-linux-") as tmp:
        print(f"  extracting {given} (not timed) ...", flush=True)
        subprocess.run(["tar", "-xf", str(given), "-C", tmp, "--strip-components=1"], check=True)
        yield Path(tmp)


def median_time(rounds: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_variant(variant_name: str, src: Path, rounds: int) -> dict[str, float]:
    variant = load_board("vexpress").kernel(variant_name)
    figures: dict[str, float] = {}
    tree = kconfig.load_tree(src)  # warm the page cache before timing
    before = os.times()
    figures["load"] = median_time(rounds, lambda: kconfig.load_tree(src))
    after = os.times()
    figures["load_cpu"] = (after.user + after.system - before.user - before.system) / rounds
    children = after.children_user + after.children_system
    spent = children - before.children_user - before.children_system
    figures["load_children"] = max(0.0, spent / rounds)

    def resolve(defconfig: str | Path = variant.defconfig) -> kconfig.KernelConfig:
        return kconfig.configure(
            src,
            defconfig=defconfig,
            fragment=variant.fragment_path(),
            fragment_label=variant.fragment,
            requirements=variant.requirements,
            tree=tree,
        )

    figures["resolve"] = median_time(rounds, resolve)
    with tempfile.TemporaryDirectory(prefix="fwgen-bench-") as tmp:
        off = Path(tmp) / "forced_defconfig"
        base = (src / "arch" / "arm" / "configs" / variant.defconfig).read_text()
        off.write_text(base + FORCED_OFF)
        changes = resolve(off).changes
        assert changes, "the forced case must make the resolver work"
        figures["forced"] = median_time(rounds, lambda: resolve(off))
        result = resolve()
        out = Path(tmp) / "linux.config"
        figures["write"] = median_time(rounds, lambda: result.write(out))
        assert kconfig.check_config(out, variant.requirements) == []
        command = [sys.executable, "-m", "fwgen", "--quiet", "config", "vexpress"]
        command += ["--kernel", variant_name, "--kernel-src", str(src), "-o", str(out)]
        figures["cli"] = median_time(rounds, lambda: subprocess.run(command, check=True))
    print(f"  forced case: the resolver set {', '.join(changes)}")
    return figures


def report(label: str, figures: dict[str, float]) -> None:
    total = figures["load"] + figures["resolve"]
    verdict = "ok" if total < 3.0 else "OVER GOAL"
    print(
        f"  {label}: load {figures['load']:.2f} s (cpu: fwgen {figures['load_cpu']:.2f} s, "
        f"commands {figures['load_children']:.2f} s)  resolve {figures['resolve'] * 1000:.0f} ms  "
        f"forced {figures['forced'] * 1000:.0f} ms  write {figures['write'] * 1000:.0f} ms  "
        f"cli {figures['cli']:.2f} s"
    )
    print(f"  {label}: load + resolve = {total:.2f} s (goal < 3 s: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    default61 = os.environ.get("FWGEN_BENCH_LINUX61_SRC") or str(DEBIAN_LINUX_61)
    parser.add_argument("--linux61", type=Path, default=Path(default61))
    default40 = os.environ.get("FWGEN_TEST_LINUX40_SRC")
    parser.add_argument("--linux40", type=Path, default=Path(default40) if default40 else None)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"kconfig benchmark, median of {args.rounds} rounds, {os.cpu_count()} CPUs, load {load}")
    for label, variant, given in (
        ("linux 6.1", "6.1", args.linux61),
        ("linux 4.0", "4.0", args.linux40),
    ):
        if given is None:
            print(f"  {label}: skipped (set FWGEN_TEST_LINUX40_SRC or --linux40)")
            continue
        if not given.exists():
            print(f"  {label}: skipped ({given} does not exist)")
            continue
        with kernel_tree(given) as src:
            print(f"  {label}: {src} (linux {kconfig.kernel_version(src)})", flush=True)
            report(label, bench_variant(variant, src, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
