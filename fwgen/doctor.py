"""Host checks: what each fwgen stage needs on this machine, and the apt-get line for the rest.

The Buildroot list follows Buildroot 2025.02's support/dependencies/dependencies.sh (programs,
minimum versions, perl modules); fwgen checks it up front so a long build does not stop at
minute one, and names Debian packages because that is what fwgen's users install from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from fwgen.errors import FwgenError


@dataclass(frozen=True)
class Need:
    """One thing a stage needs: a program (any of `programs`) or a perl module."""

    what: str
    package: str
    programs: tuple[str, ...] = ()
    perl_module: str = ""
    min_version: tuple[int, ...] = ()


@dataclass(frozen=True)
class Finding:
    stage: str
    need: Need
    ok: bool
    detail: str


def _prog(name: str, package: str, min_version: tuple[int, ...] = ()) -> Need:
    return Need(name, package, programs=(name,), min_version=min_version)


def _perl(module: str) -> Need:
    return Need(f"perl module {module}", "perl", perl_module=module)


BUILDROOT_NEEDS = (
    _prog("which", "debianutils"),
    _prog("sed", "sed"),
    Need("file", "file", programs=("/usr/bin/file",)),
    _prog("make", "make", (3, 81)),
    _prog("gcc", "gcc", (4, 8)),
    _prog("g++", "g++", (4, 8)),
    _prog("bash", "bash"),
    _prog("patch", "patch", (2, 7)),
    _prog("perl", "perl"),
    _prog("tar", "tar"),
    _prog("gzip", "gzip"),
    _prog("bzip2", "bzip2"),
    _prog("wget", "wget"),
    _prog("cpio", "cpio"),
    _prog("unzip", "unzip"),
    _prog("rsync", "rsync"),
    _prog("bc", "bc"),
    _prog("cmp", "diffutils"),
    _prog("find", "findutils"),
    _prog("xargs", "findutils"),
    _prog("awk", "gawk"),
    *(
        _perl(m)
        for m in (
            "Data::Dumper",
            "English",
            "ExtUtils::MakeMaker",
            "Thread::Queue",
            "FindBin",
            "IPC::Cmd",
        )
    ),
)

KERNEL_NEEDS = (
    Need(
        "ARM cross compiler",
        "gcc-arm-linux-gnueabi",
        programs=("arm-linux-gnueabi-gcc", "arm-linux-gnueabihf-gcc"),
    ),
    _prog("make", "make", (3, 81)),
    _prog("bc", "bc"),
    _prog("bison", "bison"),
    _prog("flex", "flex"),
    _prog("perl", "perl"),
    _prog("patch", "patch", (2, 7)),
    _prog("cpio", "cpio"),
)

FLASH_NEEDS = (_prog("bmaptool", "bmap-tools"),)

# qemu binaries come from the board recipe; Debian packages them under the same names.
QEMU_PACKAGES = {"qemu-system-arm": "qemu-system-arm", "qemu-system-aarch64": "qemu-system-arm"}


def stage_needs(qemu_binaries: Iterable[str]) -> dict[str, tuple[Need, ...]]:
    smoke = tuple(_prog(b, QEMU_PACKAGES.get(b, b)) for b in sorted(set(qemu_binaries)))
    return {
        "build": BUILDROOT_NEEDS,
        "kernel-only": KERNEL_NEEDS,
        "smoke": smoke,
        "flash": FLASH_NEEDS,
    }


STAGE_TITLES = {
    "build": "Buildroot build (Buildroot's host prerequisites)",
    "kernel-only": "kernel-only build (cross compiler and kernel build tools)",
    "smoke": "QEMU smoke test",
    "flash": "flashing with bmaptool",
}


def _version(program: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def _check(need: Need) -> tuple[bool, str]:
    if need.perl_module:
        if not shutil.which("perl"):
            return False, "perl is missing"
        probe = subprocess.run(
            ["perl", "-e", f"require {need.perl_module}"], capture_output=True, timeout=30
        )
        return probe.returncode == 0, "found" if probe.returncode == 0 else "missing"
    for program in need.programs:
        path = shutil.which(program)
        if not path:
            continue
        if not need.min_version:
            return True, path
        version = _version(path)
        shown = ".".join(map(str, version)) if version else "unknown version"
        wanted = ".".join(map(str, need.min_version))
        if version is None or version < need.min_version:
            return False, f"{path} is {shown}, need >= {wanted}"
        return True, f"{path} {shown}"
    return False, "not found"


def check(stages: Iterable[str], qemu_binaries: Iterable[str]) -> list[Finding]:
    table = stage_needs(qemu_binaries)
    findings: list[Finding] = []
    for stage in stages:
        for need in table[stage]:
            ok, detail = _check(need)
            findings.append(Finding(stage, need, ok, detail))
    return findings


def stage_notes(stage: str, *, euid: int | None = None) -> list[tuple[str, str]]:
    """(what, note) lines a stage shows besides its checks: how fwgen adapts to this host."""
    if stage == "build" and (os.geteuid() if euid is None else euid) == 0:
        return [
            (
                "user",
                "root: fwgen sets FORCE_UNSAFE_CONFIGURE=1 for Buildroot (GNU configure "
                "scripts refuse root otherwise)",
            )
        ]
    return []


def install_line(findings: Iterable[Finding]) -> str | None:
    packages = sorted({f.need.package for f in findings if not f.ok})
    if not packages:
        return None
    return "apt-get install " + " ".join(packages)


def require(stages: Iterable[str], qemu_binaries: Iterable[str] = ()) -> None:
    """For stages to call before long work: raise with the install line if anything is missing."""
    findings = check(stages, qemu_binaries)
    missing = [f for f in findings if not f.ok]
    if missing:
        names = ", ".join(f"{f.need.what} ({f.detail})" for f in missing)
        raise FwgenError(f"this host lacks what the build needs: {names}", install_line(missing))
