"""Kbuild for one kernel tree: `make O=...` with the board's arch and toolchain through
ccache, stable version strings, a progress line and the full log (fwgen.runner); the
out-of-tree modules built with M= and installed as Buildroot installs them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from fwgen import (
    modules,
    runner,
)
from fwgen.errors import FwgenError
from fwgen.log import log, progress_disabled
from fwgen.toolchain import Toolchain


class KbuildRunner:
    """Runs Kbuild for one tree: one log file, a progress line, the tail on failure."""

    def __init__(
        self,
        src: Path,
        obj: Path,
        arch: str,
        toolchain: Toolchain,
        jobs: int,
        log_file: Path,
        ccache_env: Mapping[str, str] | None = None,
    ):
        self.src, self.obj, self.jobs, self.log_file = src, obj, jobs, log_file
        self.args = [f"ARCH={arch}", f"CROSS_COMPILE={toolchain.prefix}"]
        if shutil.which("ccache"):
            self.args.append(f"CC=ccache {toolchain.gcc}")
        self.env = {
            **os.environ,
            # Stable version strings: the same inputs give the same init/version.o (and
            # ccache hits, also on another host); a Buildroot build sets these too.
            "KBUILD_BUILD_USER": "fwgen",
            "KBUILD_BUILD_HOST": "fwgen",
            **(ccache_env or {}),
        }
        if "SOURCE_DATE_EPOCH" in os.environ:
            self.env.setdefault("KBUILD_BUILD_TIMESTAMP", "@" + os.environ["SOURCE_DATE_EPOCH"])

    def make(self, *targets: str, extra: Sequence[str] = (), what: str = "") -> None:
        cmd = [
            "make",
            "-C",
            str(self.src),
            f"O={self.obj.resolve()}",
            *self.args,
            f"-j{self.jobs}",
            *extra,
            *targets,
        ]
        log.debug("running: %s", " ".join(cmd))
        bar = tqdm(
            desc=what or " ".join(targets),
            unit=" steps",
            file=sys.stderr,
            disable=progress_disabled(),
            leave=False,
        )

        def on_line(line: str) -> None:
            step = line.strip().split(None, 1)
            if len(step) == 2 and step[0].isupper() and len(step[0]) <= 10:
                bar.update(1)
                bar.set_postfix_str(step[1][-48:], refresh=False)

        with bar:
            code = runner.run(cmd, self.log_file, env=self.env, on_line=on_line)
        if code != 0:
            raise FwgenError(
                f"kernel build failed: make {' '.join(targets)} exited {code}\n"
                + runner.indent(runner.tail(self.log_file, 25))
                + f"\n  full log: {self.log_file}",
                "fix the error above; run the same command again to continue",
            )


def build_modules(runner: KbuildRunner, dest: Path, packages: Sequence[str]) -> dict[str, Path]:
    """Each module package's src/ (the source its Buildroot package uses), built in
    dest/<package>/ with Kbuild's M=. Returns module name -> .ko file."""
    if dest.exists():
        shutil.rmtree(dest)
    built = {}
    for package in packages:
        names = modules.module_names(package)
        shutil.copytree(modules.source_dir(package), dest / package)
        runner.make("modules", extra=[f"M={(dest / package).resolve()}"], what=package)
        built.update({name: dest / package / f"{name}.ko" for name in names})
    return built


def stage_modules(runner: KbuildRunner, module_dirs: Sequence[Path], staging: Path) -> Path:
    """lib/modules/<release>/ with the kernel's modules, the out-of-tree ones in extra/, and
    modules.dep (Kbuild runs depmod), as Buildroot installs them."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    install = [f"INSTALL_MOD_PATH={staging.resolve()}", "INSTALL_MOD_STRIP=1"]
    runner.make("modules_install", extra=install, what="modules_install")
    for module_dir in module_dirs:
        runner.make(
            "modules_install",
            extra=[*install, f"M={module_dir.resolve()}"],
            what=f"install {module_dir.name}",
        )
    for host_link in [*staging.glob("lib/modules/*/build"), *staging.glob("lib/modules/*/source")]:
        host_link.unlink()
    return staging


def kernel_release(obj: Path) -> str:
    return (obj / "include" / "config" / "kernel.release").read_text().strip()
