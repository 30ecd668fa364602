"""Full-build benchmark: fwgen's Buildroot build against a plain `make` of the same defconfig.

    python bench/bench_full_build.py --recipe RECIPE [--kernel 4.0] --work DIR
        [--buildroot-src TREE] [--mirror URL] [--ccache warm|cold]

Side by side, in one run, on the same host:
1. full build: `fwgen build` into DIR/fwgen, then Buildroot's own `make` of the defconfig
   fwgen rendered (the same file, unchanged) into DIR/plain; wall times and their ratio
   (goal: fwgen's overhead <= 3%). `--ccache cold` empties the ccache directory before each
   (both compile everything); `warm` (default) keeps it, so both get the same hits;
2. no-op: the same `fwgen build` again (goal <= 10 s);
3. a one-line change to the feature patch: `fwgen build` (its plan) against Buildroot's own
   `make linux-dirclean all` in DIR/plain (goal: ratio <= 1.0), and whether both zImages are
   the same bytes.

RECIPE must be a copy of a board recipe whose patch series may be edited (the full-build
tier's DIR/data/board/vexpress/board.toml is one); fwgen's checkout is never modified.

`--reuse OUTPUT` skips part 1 and measures parts 2 and 3 on a complete fwgen build that
exists (`-o OUTPUT`, e.g. the full-build tier's DIR/build): Buildroot's own
`make linux-dirclean all` then runs in that same output directory, after a second edit whose
patch directory fwgen writes exactly as a build would. Both kernels are checked for their edit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fwgen import brmake, ccache, fsutil, layout, patches, paths  # noqa: E402
from fwgen import defconfig as defconfig_module  # noqa: E402
from fwgen.board import load_board  # noqa: E402

EDIT_FROM = "mykthread: cannot run"


def run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}); see {log}")
    return time.monotonic() - start


def ccache_dir(defconfig: Path) -> Path:
    match = re.search(r'^BR2_CCACHE_DIR="([^"]+)"$', defconfig.read_text(), re.M)
    if not match:
        raise SystemExit(f"{defconfig}: no BR2_CCACHE_DIR")
    return Path(match.group(1))


def edit_patch(recipe_kernel_series: Path, round_no: int) -> None:
    edited = False
    for patch in patches.series(recipe_kernel_series):
        text = patch.read_text()
        new = re.sub(
            r"mykthread(?: \([^)]*\))?: cannot run",
            f"mykthread (bench edit {round_no}): cannot run",
            text,
        )
        if new != text:
            patch.write_text(new)
            edited = True
    if not edited:
        raise SystemExit(f"no patch in {recipe_kernel_series} has {EDIT_FROM!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, type=Path)
    parser.add_argument("--kernel", default="4.0")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--buildroot-src", type=Path)
    parser.add_argument("--mirror", default="")
    parser.add_argument("--ccache", choices=("warm", "cold"), default="warm")
    parser.add_argument("--reuse", type=Path, metavar="OUTPUT", help="skip the full builds")
    args = parser.parse_args()

    board = load_board(str(args.recipe))
    variant = board.kernel(args.kernel)
    work = args.work.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    output = args.reuse.resolve() if args.reuse else work / "fwgen"
    out = output / f"{board.name}-{args.kernel}"
    fwgen = [
        sys.executable,
        "-m",
        "fwgen",
        "--quiet",
        "build",
        str(args.recipe.resolve()),
        "--kernel",
        args.kernel,
        "-o",
        str(output),
    ]
    if args.buildroot_src:
        fwgen += ["--buildroot-src", str(args.buildroot_src.resolve())]
    if args.mirror:
        fwgen += ["--mirror", args.mirror]
    env = brmake.make_env()
    built = layout.BuildrootBuild(out)
    defconfig = built.defconfig

    # 1. full builds, side by side
    t_fwgen = t_plain = 0.0
    if args.reuse:
        if not (out / "images" / "manifest.json").is_file():
            raise SystemExit(f"--reuse {args.reuse}: no complete build in {out}")
        plain_out = out
    else:
        shutil.rmtree(out, ignore_errors=True)
        if args.ccache == "cold":
            shutil.rmtree(paths.cache_dir() / "ccache", ignore_errors=True)
        t_fwgen = run(fwgen, logs / "full-fwgen.log")
        plain_out = work / "plain" / "out"
        shutil.rmtree(plain_out.parent, ignore_errors=True)
        plain_out.parent.mkdir(parents=True)
        shutil.copy2(defconfig, plain_out.parent / "defconfig")
        if args.ccache == "cold":
            shutil.rmtree(ccache_dir(defconfig), ignore_errors=True)
    tree = Path(
        re.search(
            r"^\$ make --no-print-directory -C (\S+)",
            built.build_log.read_text(),
            re.M,
        ).group(1)
    )
    make = brmake.Make(tree, plain_out)
    # The compile cache as fwgen's builds use it (base_dir: the output directory), so both sides
    # get the same hits: without it, every object fwgen cached is a miss for the plain make.
    env.update(ccache.environment(None, base_dir=plain_out, stats_log=logs / "plain-ccache.log"))
    if not args.reuse:
        t_plain = run(
            make.command(
                "defconfig",
                args=[
                    f"BR2_EXTERNAL={paths.br2_external_dir()}",
                    f"BR2_DEFCONFIG={plain_out.parent / 'defconfig'}",
                ],
            ),
            logs / "full-plain-defconfig.log",
            env,
        )
        t_plain += run(make.command(), logs / "full-plain.log", env)

    # 2. no-op
    t_noop = run(fwgen, logs / "noop-fwgen.log")

    # 3. one-line patch change
    rounds = len(list(work.glob("round-*"))) + 1
    (work / f"round-{rounds}").touch()
    edit_patch(variant.patches_dir(), rounds)
    t_patch = run(fwgen, logs / "patch-fwgen.log")
    fwgen_has_edit = has_edit(out / "build", rounds)
    if args.reuse:
        # A second edit, for Buildroot's own way on the same output directory.
        rounds += 1
        (work / f"round-{rounds}").touch()
        edit_patch(variant.patches_dir(), rounds)
        defconfig_module.write_global_patch_dir(built.patch_dir, board, args.kernel)
    # fwgen rewrote the global patch dir both builds use; Buildroot's own way to take it:
    t_patch_plain = run(make.command("linux-dirclean", "all"), logs / "patch-plain.log", env)
    plain_has_edit = has_edit(plain_out / "build", rounds)

    print(
        f"full-build benchmark: {board.name} kernel {args.kernel}, {os.cpu_count()} CPUs, "
        f"ccache {args.ccache}, load average now {os.getloadavg()[0]:.2f}"
    )
    if args.reuse:
        print(f"  full build:  not run (--reuse {args.reuse})")
    else:
        print(
            f"  full build:  fwgen {t_fwgen:7.0f} s   plain make {t_plain:7.0f} s   "
            f"fwgen/plain {t_fwgen / t_plain:.3f} (goal <= 1.03)"
        )
    print(f"  no-op:       fwgen {t_noop:7.1f} s (goal <= 10 s)")
    print(
        f"  patch edit:  fwgen {t_patch:7.0f} s   make linux-dirclean all {t_patch_plain:7.0f} s"
        f"   ratio {t_patch / t_patch_plain:.2f} (goal <= 1.0); the edit in each kernel: "
        f"{'yes' if fwgen_has_edit else 'NO'} / {'yes' if plain_has_edit else 'NO'}"
    )
    if not args.reuse:
        same = fsutil.sha256_file(out / "images" / "zImage") == fsutil.sha256_file(
            plain_out / "images" / "zImage"
        )
        print(f"  same zImage after the same edit: {'yes' if same else 'NO'}")
    return 0


def has_edit(build_dir: Path, round_no: int) -> bool:
    """Whether the kernel Buildroot built (build/linux-*/vmlinux) holds edit `round_no`."""
    needle = f"mykthread (bench edit {round_no}): cannot run".encode()
    return any(needle in vmlinux.read_bytes() for vmlinux in build_dir.glob("linux-*/vmlinux"))


if __name__ == "__main__":
    raise SystemExit(main())
