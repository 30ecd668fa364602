"""Loading the Kconfig tree of an extracted kernel source, with the environment its
Makefile would export."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import kconfiglib

from fwgen import toolchain
from fwgen.errors import FwgenError

log = logging.getLogger("fwgen.kconfig")

DEFAULT_CROSS_COMPILE = "arm-linux-gnueabi-"

# linux >= 5.x writes the modules attribute of MODULES as a bare `modules` line; kconfiglib
# 14.1 only parses the older `option modules` spelling. Same line count, so file:line holds.
_BARE_MODULES_RE = re.compile(r"^([ \t]*)modules([ \t]*)$", re.M)
_MAKEFILE_VAR_RE = re.compile(
    r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(\S*)[ \t]*$", re.M
)

# Variables the kernel's Makefile does not export to Kconfig but that would change what the
# Kconfig macros compute if inherited from the caller's environment.
_SCRUBBED_ENV = (
    "CLANG_FLAGS",
    "USERCFLAGS",
    "USERLDFLAGS",
    "LLVM",
    "CONFIG_",
    "KCONFIG_CONFIG",
    "KCONFIG_ALLCONFIG",
    "KCONFIG_STRICT",
    "KCONFIG_WARN_UNDEF",
    "KCONFIG_WARN_UNDEF_ASSIGN",
    "KCONFIG_CONFIG_HEADER",
    "KCONFIG_AUTOHEADER_HEADER",
)


class _KernelKconfig(kconfiglib.Kconfig):
    """kconfiglib.Kconfig that reads the bare `modules` attribute as `option modules`."""

    def _open(self, filename: str, mode: str) -> IO[str]:
        stream = super()._open(filename, mode)
        if mode != "r":
            return stream
        with stream:
            text = stream.read()
        if "modules" in text:
            text = _BARE_MODULES_RE.sub(r"\1option modules\2", text)
        return io.StringIO(text)


def kernel_version(srctree: Path) -> str:
    """KERNELVERSION as the tree's Makefile computes it (e.g. '4.0.0', '6.1.192')."""
    try:
        text = (srctree / "Makefile").read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise FwgenError(f"{srctree} is not a kernel source tree: no readable Makefile") from e
    parts = dict(_MAKEFILE_VAR_RE.findall(text[:4000]))
    if not parts.get("VERSION"):
        raise FwgenError(f"{srctree}/Makefile does not set VERSION: not a kernel source tree?")
    version = parts["VERSION"]
    if parts.get("PATCHLEVEL"):
        version += "." + parts["PATCHLEVEL"]
        if parts.get("SUBLEVEL"):
            version += "." + parts["SUBLEVEL"]
    return version + parts.get("EXTRAVERSION", "")


def _uses_kconfig_macros(srctree: Path) -> bool:
    # Since 4.18, Kconfig runs the compiler ($(shell ...), cc-option) while it is parsed.
    return (srctree / "scripts" / "Kconfig.include").is_file()


def _cc_version_text(cc: str) -> str | None:
    """First line of `$CC --version`, as the kernel Makefile exports it; None if no $CC."""
    if "/" not in cc and shutil.which(cc) is None:
        return None
    version = toolchain.gcc_version(cc)
    return None if version is None else version.replace("#", "")


def kconfig_environment(srctree: Path, cross_compile: str, arch: str = "arm") -> dict[str, str]:
    """The variables the kernel Makefile exports to Kconfig (ARCH, CC, CC_VERSION_TEXT, ...).

    If `<cross_compile>gcc` is missing, a tree whose Kconfig runs the compiler (>= 4.18) is
    refused: its config would silently differ (CC_IS_GCC, GCC_VERSION and every cc-option
    test would come out n). Older trees (4.0) do not ask the compiler and load without it.
    """
    cc = f"{cross_compile}gcc"
    version_text = _cc_version_text(cc)
    if version_text is None and _uses_kconfig_macros(srctree):
        raise FwgenError(
            f"the Kconfig of {srctree} runs the C compiler, and '{cc}' is not on PATH",
            "install the cross compiler (Debian: apt-get install gcc-arm-linux-gnueabi) "
            "or name another one with --cross-compile PREFIX",
        )
    tools = {t.upper(): f"{cross_compile}{t}" for t in ("ld", "ar", "nm", "objcopy", "objdump")}
    return {
        "srctree": str(srctree),
        "ARCH": arch,
        "SRCARCH": arch,
        "KERNELVERSION": kernel_version(srctree),
        "CROSS_COMPILE": cross_compile,
        "CC": cc,
        **tools,
        "READELF": f"{cross_compile}readelf",
        "STRIP": f"{cross_compile}strip",
        "HOSTCC": "gcc",
        "HOSTCXX": "g++",
        "PAHOLE": "pahole",
        "RUSTC": "rustc",
        "BINDGEN": "bindgen",
        "CC_VERSION_TEXT": version_text or "",
    }


@contextlib.contextmanager
def _scoped_environment(values: Mapping[str, str], scrub: Sequence[str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in [*values, *scrub]}
    try:
        for name in scrub:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_tree(srctree: Path) -> None:
    missing = [name for name in ("Makefile", "Kconfig") if not (srctree / name).is_file()]
    if missing:
        raise FwgenError(
            f"{srctree} is not a kernel source tree (no {' or '.join(missing)})",
            "give --kernel-src the top directory of an extracted linux source",
        )


def drain_warnings(kconf: kconfiglib.Kconfig) -> None:
    for warning in kconf.warnings:
        log.debug("kconfiglib: %s", warning)
    kconf.warnings.clear()


def load_tree(
    srctree: Path, *, cross_compile: str = DEFAULT_CROSS_COMPILE, arch: str = "arm"
) -> kconfiglib.Kconfig:
    """The parsed Kconfig tree of a kernel source (all symbols at their defaults).

    The environment is set only while parsing, and parsing runs in a scratch directory because
    the kernel's cc-option macro creates temporary files in the current directory.
    """
    srctree = srctree.resolve()
    _check_tree(srctree)
    env = kconfig_environment(srctree, cross_compile, arch)
    output = io.StringIO()
    start = time.monotonic()
    with (
        _scoped_environment(env, _SCRUBBED_ENV),
        tempfile.TemporaryDirectory(prefix="fwgen-kconfig-") as scratch,
        contextlib.chdir(scratch),
        contextlib.redirect_stdout(output),  # $(info ...) prints
    ):
        try:
            kconf = _KernelKconfig("Kconfig", warn_to_stderr=False)
        except (kconfiglib.KconfigError, OSError) as e:
            raise FwgenError(
                f"cannot load the Kconfig tree of {srctree}: {e}",
                "check that --kernel-src is a complete, pristine kernel source",
            ) from e
    for line in output.getvalue().splitlines():
        log.debug("kconfig: %s", line)
    drain_warnings(kconf)
    log.debug(
        "Kconfig of linux %s loaded in %.2f s (%d symbols)",
        env["KERNELVERSION"],
        time.monotonic() - start,
        len(kconf.unique_defined_syms),
    )
    return kconf
