"""Flash benchmark: a 256 MiB sdcard.img with about 10% mapped data, written to a file.

    .venv/bin/python bench/bench_flash.py [--rounds 3] [--size-mib 256] [--mapped 0.10]
                                          [--dir DIR]

The image is sparse: random 1 MiB chunks spread evenly until `--mapped` of it holds data; its
.bmap comes from `bmaptool create`. Each round writes it to a fresh target file in DIR
(default: the temp directory) two ways, timed as separate processes:
  fwgen   `python -m fwgen flash vexpress --images IMG --device TARGET --yes` (the image
          checked against SHA256SUMS, bmaptool copy with the .bmap, checksums verified, fsync,
          the mapped ranges read back)
  dd      `dd if=sdcard.img of=TARGET bs=4M conv=fsync`
Figures, median of the rounds: wall time; bytes written (fwgen: what it reports, which is
the bmap's mapped size; dd: what dd reports); bytes the target file allocates on disk
(st_blocks * 512). Goal: fwgen writes exactly the mapped size; the time ratio is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fwgen import images

MiB = 1 << 20


def make_image(directory: Path, size_mib: int, mapped: float) -> int:
    image = directory / "sdcard.img"
    chunks = max(1, round(size_mib * mapped))
    step = size_mib / chunks
    with image.open("wb") as f:
        f.truncate(size_mib * MiB)
        for i in range(chunks):
            f.seek(int(i * step) * MiB)
            f.write(os.urandom(MiB))
    subprocess.run(
        ["bmaptool", "create", "-o", str(directory / "sdcard.img.bmap"), str(image)], check=True
    )
    # manifest.json and SHA256SUMS, as a build leaves them: fwgen flash checks the image first.
    images.finalize(directory, {"board": "vexpress", "build": "buildroot"})
    return chunks * MiB


def run_fwgen(images: Path, target: Path) -> tuple[float, int]:
    argv = [sys.executable, "-m", "fwgen", "flash", "vexpress", "--images", str(images)]
    argv += ["--device", str(target), "--yes"]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    match = re.search(r"\((\d+) bytes\)", result.stdout)
    if not match:
        raise SystemExit(f"no byte count in fwgen's output:\n{result.stdout}{result.stderr}")
    return seconds, int(match.group(1))


def run_dd(image: Path, target: Path) -> tuple[float, int]:
    argv = ["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync"]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    match = re.search(r"^(\d+) bytes", result.stderr, re.M)
    return seconds, int(match.group(1)) if match else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--mapped", type=float, default=0.10)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fwgen-bench-flash-", dir=args.dir) as tmp:
        work = Path(tmp)
        images = work / "images"
        images.mkdir()
        mapped = make_image(images, args.size_mib, args.mapped)
        print(
            f"image: {args.size_mib} MiB, mapped {mapped} bytes ({mapped / MiB:.0f} MiB, "
            f"{100 * mapped / (args.size_mib * MiB):.1f}%), {args.rounds} rounds, target dir "
            f"filesystem: {_fstype(work)}"
        )
        rows: dict[str, list[tuple[float, int, int]]] = {"fwgen": [], "dd": []}
        for i in range(args.rounds):
            for name in ("fwgen", "dd"):
                target = work / f"target-{name}-{i}.img"
                if name == "fwgen":
                    seconds, written = run_fwgen(images, target)
                else:
                    seconds, written = run_dd(images / "sdcard.img", target)
                rows[name].append((seconds, written, target.stat().st_blocks * 512))
                target.unlink()
        print(f"{'tool':<6} {'time s':>8} {'bytes written':>14} {'allocated':>12}")
        medians = {}
        for name, values in rows.items():
            seconds = statistics.median(v[0] for v in values)
            written = statistics.median(v[1] for v in values)
            allocated = statistics.median(v[2] for v in values)
            medians[name] = seconds
            print(f"{name:<6} {seconds:>8.2f} {written:>14.0f} {allocated:>12.0f}")
        fwgen_written = rows["fwgen"][0][1]
        print(
            f"fwgen bytes written == mapped size: {fwgen_written == mapped} "
            f"({fwgen_written} vs {mapped}); time ratio fwgen/dd: "
            f"{medians['fwgen'] / medians['dd']:.2f}"
        )
    return 0


def _fstype(path: Path) -> str:
    result = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
