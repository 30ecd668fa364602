"""Kernel .config from the kernel's own Kconfig tree, with kconfiglib.

The flow: load `Kconfig` of an extracted kernel source (ARCH=arm), load the board's defconfig,
merge the board fragment, then apply the recipe's requirements (`SYSCTL=y`, ...). A requirement
that does not stick when set directly is met through what controls it (its dependencies, the
conditions of its prompt, the symbols that select it), searched recursively and bounded. Nothing
is written unless every requirement and every fragment line holds in the result.

Semantics of a conflict: the fragment is the board's explicit choice and beats the resolver.
The resolver may change anything the defconfig or the defaults decided, but never a symbol the
fragment assigns; when a requirement needs such a change, the error names the requirement, the
blocking symbol (with its Kconfig file and line) and the fragment line.
"""

from fwgen.kconfig.config import (
    KernelConfig,
    configure,
    configure_variant,
    defconfig_path,
)
from fwgen.kconfig.explanation import explain, why_not
from fwgen.kconfig.resolver import MAX_CHANGES, MAX_DEPTH, MAX_STEPS
from fwgen.kconfig.tree import DEFAULT_CROSS_COMPILE, kconfig_environment, kernel_version, load_tree
from fwgen.kconfig.values import (
    Assignment,
    check_config,
    config_line,
    parse_config_line,
    parse_requirement,
    read_config_values,
    read_fragment,
    verify_config,
)

__all__ = [
    "DEFAULT_CROSS_COMPILE",
    "MAX_CHANGES",
    "MAX_DEPTH",
    "MAX_STEPS",
    "Assignment",
    "KernelConfig",
    "check_config",
    "config_line",
    "configure",
    "configure_variant",
    "defconfig_path",
    "explain",
    "kconfig_environment",
    "kernel_version",
    "load_tree",
    "parse_config_line",
    "parse_requirement",
    "read_config_values",
    "read_fragment",
    "verify_config",
    "why_not",
]
