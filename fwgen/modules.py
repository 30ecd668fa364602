"""The out-of-tree kernel modules: the Buildroot kernel-module packages of br2-external/.

Buildroot builds each package (`$(eval $(kernel-module))`, source in the package's `src/`)
against the kernel of its build; the kernel-only build compiles the same `src/` with Kbuild.
The recipe names the packages (`module_packages`): both build paths build them, the
defconfig enables each (`BR2_PACKAGE_<NAME>=y`), and the Buildroot rebuild planner rebuilds
them after a kernel change (Buildroot does not rebuild a module when its kernel is rebuilt).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from fwgen import fingerprint, paths
from fwgen.errors import FwgenError

_OBJ_M_RE = re.compile(r"^obj-m\s*[:+]?=\s*(.*?)\s*$", re.M)


def package_dir(package: str) -> Path:
    return paths.br2_external_dir() / "package" / package


def source_dir(package: str) -> Path:
    return package_dir(package) / "src"


def symbol(package: str) -> str:
    """The Buildroot option that enables a package: BR2_PACKAGE_<NAME>."""
    return "BR2_PACKAGE_" + package.upper().replace("-", "_")


def module_names(package: str) -> list[str]:
    """The modules a package builds, from the obj-m line of its src/Makefile (as Kbuild)."""
    makefile = source_dir(package) / "Makefile"
    try:
        text = makefile.read_text(encoding="utf-8")
    except OSError as e:
        raise FwgenError(
            f"{makefile}: cannot read the Kbuild makefile of module package {package}: "
            f"{e.strerror}",
            f"give br2-external/package/{package}/src/ a Makefile with an obj-m line",
        ) from None
    names = [word.removesuffix(".o") for line in _OBJ_M_RE.findall(text) for word in line.split()]
    if not names or not all(n and n.isidentifier() for n in names):
        raise FwgenError(
            f"{makefile}: no usable obj-m line (found {names or 'none'})",
            "name the module there, e.g. 'obj-m := my_module.o'",
        )
    return names


def content_hash(packages: Sequence[str]) -> str:
    """One digest over every module package (.mk, Config.in, src/): the rebuild input."""
    digest = hashlib.sha256()
    for package in packages:
        digest.update(f"{package} {fingerprint.tree_content(package_dir(package))}\n".encode())
    return digest.hexdigest()
