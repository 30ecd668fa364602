"""Which cross compiler each build path uses, decided here only.

The Buildroot path (its kconfig stage included) uses the toolchain Buildroot builds in its
output directory (`of_buildroot`). The kernel-only path takes, in this order (`find`):

1. `--cross-compile PREFIX` (the user said so);
2. the host toolchain of an earlier full Buildroot build of the same board and kernel
   (`<build>/host/bin/*-linux-gnueabi*-gcc`), so both paths compile with the same GCC;
3. `arm-linux-gnueabi-gcc` or `arm-linux-gnueabihf-gcc` on PATH (Debian's cross compilers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fwgen import layout
from fwgen.errors import FwgenError

PATH_PREFIXES = ("arm-linux-gnueabi-", "arm-linux-gnueabihf-")
INSTALL_HINT = (
    "apt-get install gcc-arm-linux-gnueabi, or pass --cross-compile PREFIX "
    "(e.g. --cross-compile /opt/x-tools/bin/arm-linux-gnueabi-)"
)


@dataclass(frozen=True)
class Toolchain:
    prefix: str  # CROSS_COMPILE value: a PATH name or an absolute path prefix
    origin: str  # why this one was chosen, for the log and the manifest
    version: str  # first line of `gcc --version`

    @property
    def gcc(self) -> str:
        return f"{self.prefix}gcc"


def gcc_version(gcc: str) -> str | None:
    """The first line of `gcc --version`; None when it cannot be run."""
    try:
        out = subprocess.run(
            [gcc, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "LC_ALL": "C"},  # the same text whatever the user's locale
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout:
        return None
    return out.stdout.splitlines()[0].strip()


def _usable(prefix: str) -> str | None:
    gcc = f"{prefix}gcc"
    if "/" not in gcc and not shutil.which(gcc):
        return None
    return gcc_version(gcc)


def buildroot_toolchain(build_dir: Path) -> str | None:
    """The CROSS_COMPILE prefix of a Buildroot output dir's host toolchain, if it has one."""
    for gcc in sorted(
        (layout.BuildrootBuild(build_dir).host / "bin").glob("arm-*-linux-gnueabi*-gcc")
    ):
        return str(gcc)[: -len("gcc")]
    return None


def of_buildroot(build_dir: Path) -> Toolchain:
    """The toolchain a Buildroot output directory built (after `make toolchain`)."""
    prefix = buildroot_toolchain(build_dir)
    version = _usable(prefix) if prefix else None
    if prefix is None or version is None:
        raise FwgenError(
            f"{build_dir / 'host' / 'bin'} holds no working ARM cross compiler after "
            "`make toolchain`",
            "run the same fwgen build command again; if it persists, --clean rebuilds the "
            "toolchain",
        )
    return Toolchain(prefix, f"Buildroot host toolchain in {build_dir}", version)


def find(explicit: str | None, buildroot_dirs: list[Path] | tuple[Path, ...] = ()) -> Toolchain:
    if explicit:
        version = _usable(explicit)
        if version is None:
            raise FwgenError(
                f"--cross-compile {explicit}: '{explicit}gcc' is not a working compiler",
                "give the prefix without 'gcc' (e.g. arm-linux-gnueabi-), on PATH or absolute",
            )
        return Toolchain(explicit, "--cross-compile", version)
    for build_dir in buildroot_dirs:
        prefix = buildroot_toolchain(build_dir)
        if prefix and (version := _usable(prefix)):
            return Toolchain(prefix, f"Buildroot host toolchain in {build_dir}", version)
    for prefix in PATH_PREFIXES:
        if version := _usable(prefix):
            return Toolchain(prefix, "PATH", version)
    raise FwgenError("no ARM cross compiler found", INSTALL_HINT)
