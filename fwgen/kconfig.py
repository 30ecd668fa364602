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

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import kconfiglib
from kconfiglib import (
    AND,
    BOOL,
    NOT,
    OR,
    STRING,
    TRISTATE,
    Symbol,
    expr_str,
    expr_value,
    split_expr,
)

from fwgen import fsutil, paths
from fwgen.errors import FwgenError

if TYPE_CHECKING:
    from fwgen.board import KernelVariant

log = logging.getLogger("fwgen.kconfig")

DEFAULT_CROSS_COMPILE = "arm-linux-gnueabi-"
MAX_DEPTH = 8
MAX_CHANGES = 200
MAX_STEPS = 5000

# linux >= 5.x writes the modules attribute of MODULES as a bare `modules` line; kconfiglib
# 14.1 only parses the older `option modules` spelling. Same line count, so file:line holds.
_BARE_MODULES_RE = re.compile(r"^([ \t]*)modules([ \t]*)$", re.M)
_CONFIG_LINE_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_NOT_SET_RE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_REQUIREMENT_RE = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")
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


# --- Values: requirements, fragment lines, .config files -----------------------------------


@dataclass(frozen=True)
class Assignment:
    """One `CONFIG_NAME=value` or `# CONFIG_NAME is not set` line (value "n")."""

    name: str
    value: str
    text: str
    source: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.source else self.text

    def origin(self) -> str:
        if self.source:
            return f"the fragment {self.where} ('{self.text}')"
        return f"the requirement {self.text}"

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


def parse_requirement(text: str) -> Assignment:
    """'SYSCTL=y' (as in board.toml) -> Assignment; string values may be quoted."""
    match = _REQUIREMENT_RE.match(text.strip())
    if not match or match.group(1).startswith("CONFIG_"):
        raise FwgenError(
            f"requirement {text!r} is not SYMBOL=value",
            "write e.g. SYSCTL=y, without the CONFIG_ prefix",
        )
    return Assignment(match.group(1), _unquote(match.group(2)), text.strip())


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return kconfiglib.unescape(value[1:-1])
    return value


def parse_config_line(line: str) -> Assignment | None:
    """An assignment for a .config line, None for blank and comment lines."""
    text = line.strip()
    if match := _CONFIG_LINE_RE.match(text):
        return Assignment(match.group(1), _unquote(match.group(2)), text)
    if match := _NOT_SET_RE.match(text):
        return Assignment(match.group(1), "n", text)
    return None


def read_fragment(path: Path, label: str | None = None) -> list[Assignment]:
    """The assignments of a config fragment, each with its file label and line number."""
    label = label or str(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise FwgenError(f"cannot read the kernel config fragment {label}: {e.strerror}") from e
    result = []
    for number, line in enumerate(lines, start=1):
        assignment = parse_config_line(line)
        if assignment is None:
            if line.strip() and not line.lstrip().startswith("#"):
                raise FwgenError(
                    f"{label}:{number}: {line.strip()!r} is not a kernel config line",
                    "use CONFIG_NAME=value or '# CONFIG_NAME is not set'",
                )
            continue
        result.append(Assignment(assignment.name, assignment.value, assignment.text, label, number))
    return result


def read_config_values(path: Path) -> dict[str, str]:
    """NAME -> value of a finished .config ('n' for '# CONFIG_NAME is not set')."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise FwgenError(f"cannot read kernel config {path}: {e.strerror}") from e
    values = {}
    for line in text.splitlines():
        assignment = parse_config_line(line)
        if assignment is not None:
            values[assignment.name] = assignment.value
    return values


def _same_value(actual: str, wanted: str) -> bool:
    if actual == wanted:
        return True
    try:  # int and hex symbols: 0x10 == 0X10 == 16
        return int(actual, 0) == int(wanted, 0)
    except ValueError:
        return False


def check_config(config_path: Path, requirements: Sequence[str]) -> list[str]:
    """The requirements (as given) that a finished kernel .config does not meet.

    A plain parse of the file; no Kconfig tree needed. A symbol missing from the file counts
    as n (that is how the kernel writes symbols whose dependencies are not met).
    """
    values = read_config_values(config_path)
    unmet = []
    for text in requirements:
        req = parse_requirement(text)
        if not _same_value(values.get(req.name, "n"), req.value):
            unmet.append(text)
    return unmet


def verify_config(config_path: Path, requirements: Sequence[str]) -> None:
    """Raise FwgenError naming every requirement the .config does not meet."""
    unmet = check_config(config_path, requirements)
    if not unmet:
        return
    values = read_config_values(config_path)
    details = []
    for text in unmet:
        name = parse_requirement(text).name
        found = f"{name}={values[name]}" if name in values else f"{name} absent"
        details.append(f"  {text} (found {found})")
    raise FwgenError(
        f"kernel config {config_path} does not meet the recipe's requirements:\n"
        + "\n".join(details),
        "regenerate it (fwgen config BOARD --kernel-src DIR|TARBALL -o FILE shows what the "
        "recipe asks for), or fix the fragment, and rebuild",
    )


# --- Loading the Kconfig tree ------------------------------------------------------------


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
    path = shutil.which(cc)
    if path is None:
        return None
    try:
        result = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except OSError:
        return None
    first = result.stdout.splitlines()[0] if result.stdout else ""
    return first.replace("#", "")


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


def _drain_warnings(kconf: kconfiglib.Kconfig) -> None:
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
    _drain_warnings(kconf)
    log.debug(
        "Kconfig of linux %s loaded in %.2f s (%d symbols)",
        env["KERNELVERSION"],
        time.monotonic() - start,
        len(kconf.unique_defined_syms),
    )
    return kconf


# --- Describing symbols ------------------------------------------------------------------


def _loc(sc: Symbol) -> str:
    nodes = getattr(sc, "nodes", None)
    if not nodes:
        return "undefined"
    return f"{nodes[0].filename}:{nodes[0].linenr}"


def _named(sc: object) -> str:
    if isinstance(sc, Symbol) and not sc.is_constant:
        return f"{sc.name} ({_loc(sc)})"
    return expr_str(sc)


def _with_values(expr: object) -> str:
    """An expression with each symbol's current value, e.g. 'EXPERT[=n] && PROC_FS[=y]'."""

    def show(sc: object) -> str:
        if isinstance(sc, Symbol) and not sc.is_constant and sc.nodes:
            return f"{sc.name}[={sc.str_value}]"
        return kconfiglib.standard_sc_expr_str(sc)

    return expr_str(expr, show)


def _has_prompt(sym: Symbol) -> bool:
    return any(node.prompt for node in sym.nodes)


def _has_value(sym: Symbol, value: str) -> bool:
    if sym.orig_type is STRING:
        return sym.str_value == value
    return _same_value(sym.str_value, value)


def _first_symbol(expr: object) -> object:
    while isinstance(expr, tuple) and expr[0] is AND:
        expr = expr[1]
    return expr


# --- The resolver ------------------------------------------------------------------------


class _Blocked(Exception):
    """Why a goal cannot be reached: every path tried, each a chain of steps, outermost first."""

    def __init__(self, *steps: str, chains: Sequence[Sequence[str]] = ()) -> None:
        self.chains = [list(c) for c in chains] or [list(steps)]
        super().__init__(self.summary())

    def under(self, step: str) -> _Blocked:
        return _Blocked(chains=[[step, *chain] for chain in self.chains])

    @staticmethod
    def any_of(failures: Sequence[_Blocked]) -> _Blocked:
        return _Blocked(chains=[chain for f in failures for chain in f.chains])

    def summary(self, limit: int = 3) -> str:
        """The distinct final obstacles: what would have to change."""
        roots = list(dict.fromkeys(chain[-1] for chain in self.chains))
        more = f"; and {len(roots) - limit} more obstacles" if len(roots) > limit else ""
        return "; ".join(roots[:limit]) + more

    def paths(self, limit: int = 6) -> list[str]:
        lines = [" -> ".join(chain) for chain in self.chains[:limit]]
        if len(self.chains) > limit:
            lines.append(f"... and {len(self.chains) - limit} more paths")
        return lines


@dataclass
class _Resolver:
    """Makes requirements hold by changing what controls them, never a fragment's choice."""

    kconf: kconfiglib.Kconfig
    pinned: Mapping[str, Assignment]
    actions: list[str] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list)
    _steps: int = 0
    _target: Symbol | None = None
    _up: bool = True

    def require(self, req: Assignment) -> None:
        sym = self.kconf.syms.get(req.name)
        if sym is None or not sym.nodes:
            raise FwgenError(
                f"requirement {req.text}: this kernel has no symbol {req.name}",
                _suggest(self.kconf, req.name) or "check the spelling in board.toml",
            )
        mark = len(self._undo)
        self._steps = 0
        self._target = sym
        self._up = _tri(sym, req.value) >= sym.tri_value
        try:
            self._achieve(sym, req.value, ())
        except _Blocked as blocked:
            self._rollback(mark)
            tried = "\n".join(f"  path tried: {line}" for line in blocked.paths())
            raise FwgenError(
                f"{req.text} cannot be met: {blocked.summary()}\n{tried}",
                "change the fragment or the requirement (fwgen config BOARD --kernel-src "
                "DIR|TARBALL --explain SYMBOL shows why a symbol has its value)",
            ) from None

    # Changes, recorded so that a failed alternative leaves no trace.

    def _set(self, sym: Symbol, value: str) -> None:
        if len(self._undo) >= MAX_CHANGES:
            raise _Blocked(f"gave up after {MAX_CHANGES} changes")
        if sym is not self._target:
            self._check_direction(sym, value)
        self._undo.append(self._restorer(sym))
        before = sym.str_value
        sym.set_value(value)
        self.actions.append(f"{sym.name}={value} (was {before or 'unset'})")

    def _check_direction(self, sym: Symbol, value: str) -> None:
        """Meeting a requirement only turns other symbols on (for =n: only off).

        Without this rule the cheapest path can be absurd: turning off the CPU family so
        that some other driver becomes selectable.
        """
        if sym.orig_type not in (BOOL, TRISTATE):
            return
        new = _tri(sym, value)
        if self._up and new < sym.tri_value:
            raise _Blocked(f"{_named(sym)} would have to be turned off (it is {sym.str_value})")
        if not self._up and new > sym.tri_value:
            raise _Blocked(f"{_named(sym)} would have to be turned on (it is {sym.str_value})")
        chosen = sym.choice.selection if sym.choice is not None else None
        if new == 2 and chosen not in (None, sym):
            raise _Blocked(f"{_named(sym)} would replace {_named(chosen)} in their choice")

    @staticmethod
    def _restorer(sym: Symbol) -> Callable[[], None]:
        user_value, choice = sym.user_value, sym.choice
        mode = choice.user_value if choice else None
        selection = choice.user_selection if choice else None

        def restore() -> None:
            if user_value is None:
                sym.unset_value()
            else:
                sym.set_value(user_value)
            if choice is not None:
                choice.unset_value()
                if mode is not None:
                    choice.set_value(mode)
                if selection is not None:
                    selection.set_value(2)

        return restore

    def _rollback(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()
        del self.actions[mark:]

    def _alternatives(self, attempts: Sequence[Callable[[], None]]) -> None:
        """Run the attempt that succeeds with the fewest changes, or raise all failures."""
        if len(attempts) == 1:
            attempts[0]()
            return
        failures: list[_Blocked] = []
        best: tuple[int, Callable[[], None]] | None = None
        for attempt in attempts:
            mark = len(self._undo)
            try:
                attempt()
            except _Blocked as blocked:
                failures.append(blocked)
                self._rollback(mark)
                continue
            cost = len(self._undo) - mark
            self._rollback(mark)
            if best is None or cost < best[0]:
                best = (cost, attempt)
            if cost <= 1:
                break
        if best is None:
            raise _Blocked.any_of(failures)
        best[1]()  # deterministic: the same state gives the same changes

    # Goals.

    def _achieve(self, sym: Symbol, value: str, stack: tuple[str, ...]) -> None:
        if _has_value(sym, value):
            return
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise _Blocked(f"gave up at {_named(sym)}: the search took over {MAX_STEPS} steps")
        if sym.name in stack:
            raise _Blocked(f"{_named(sym)} depends on itself through {' -> '.join(stack)}")
        if len(stack) >= MAX_DEPTH:
            raise _Blocked(f"gave up at {_named(sym)}: more than {MAX_DEPTH} levels deep")
        pin = self.pinned.get(sym.name)
        if pin is not None and not _same_value(pin.value, value):
            raise _Blocked(f"{_named(sym)} is forced to {pin.value} by {pin.origin()}")
        stack = (*stack, sym.name)
        if value == "n" and sym.orig_type in (BOOL, TRISTATE):
            self._lower(sym, stack)
        else:
            self._raise(sym, value, stack)
        if not _has_value(sym, value):
            raise _Blocked(f"{_named(sym)} stays {sym.str_value or 'unset'} once set to {value}")

    def _raise(self, sym: Symbol, value: str, stack: tuple[str, ...]) -> None:
        attempts = []
        if _has_prompt(sym):
            attempts.append(lambda: self._through_prompt(sym, value, stack))
        if sym.orig_type in (BOOL, TRISTATE):
            for term in _terms(sym.rev_dep):
                attempts.append(lambda term=term: self._through_selector(sym, term, value, stack))
        if not attempts:
            raise _Blocked(f"{_named(sym)} has no prompt and nothing selects it")
        self._alternatives(attempts)

    def _through_prompt(self, sym: Symbol, value: str, stack: tuple[str, ...]) -> None:
        # A bool/tristate prompt must allow the value; any other prompt only has to be visible.
        level = 2 if value == "y" and sym.orig_type in (BOOL, TRISTATE) else 1
        direct = _dep_names(sym)

        def step(dep: str) -> str:
            verb = "depends on" if dep.lstrip("!") in direct else "has a prompt only if"
            return f"{_named(sym)} {verb} {dep}"

        prompts = [node.prompt[1] for node in sym.nodes if node.prompt]
        self._alternatives([lambda c=c: self._make_true(c, level, stack, step) for c in prompts])
        if not _has_value(sym, value):  # a visible prompt may be all it took
            self._set(sym, value)
        if not _has_value(sym, value):
            raise _Blocked(f"{_named(sym)} stays {sym.str_value} when set to {value}")

    def _through_selector(
        self, sym: Symbol, term: object, value: str, stack: tuple[str, ...]
    ) -> None:
        self._make_true(term, 1 if value == "m" else 2, stack, self._selected_step(sym, term))
        if not _has_value(sym, value):
            selector = _named(_first_symbol(term))
            raise _Blocked(f"{selector} selects {_named(sym)} as {sym.str_value}, not {value}")

    def _lower(self, sym: Symbol, stack: tuple[str, ...]) -> None:
        for term in _terms(sym.rev_dep):
            if expr_value(term):
                self._make_false(term, stack, self._selected_step(sym, term))
        if sym.tri_value == 0:
            return
        if not _has_prompt(sym):
            raise _Blocked(f"{_named(sym)} has no prompt and its default gives {sym.str_value}")

        def step(dep: str) -> str:
            return f"{_named(sym)} has a prompt only if {dep}"

        prompts = [node.prompt[1] for node in sym.nodes if node.prompt]
        self._alternatives([lambda c=c: self._make_true(c, 1, stack, step) for c in prompts])
        self._set(sym, "n")

    @staticmethod
    def _selected_step(sym: Symbol, term: object) -> Callable[[str], str]:
        selector = _named(_first_symbol(term))
        prefix = "has no prompt and " if not _has_prompt(sym) else ""
        selected = f"{_named(sym)} {prefix}is selected by {selector}"

        def step(dep: str) -> str:
            return selected if dep == selector else f"{selected} only if {dep}"

        return step

    # Expressions: make them at least `level` (1 = m, 2 = y), or n.

    def _make_true(
        self, expr: object, level: int, stack: tuple[str, ...], step: Callable[[str], str]
    ) -> None:
        if expr_value(expr) >= level:
            return
        if isinstance(expr, Symbol):
            want = "m" if level == 1 and expr.orig_type is TRISTATE else "y"
            self._leaf(expr, want, stack, step)
        elif isinstance(expr, tuple) and expr[0] is AND:
            self._make_true(expr[1], level, stack, step)
            self._make_true(expr[2], level, stack, step)
        elif isinstance(expr, tuple) and expr[0] is OR:
            self._alternatives(
                [lambda e=e: self._make_true(e, level, stack, step) for e in expr[1:]]
            )
        elif isinstance(expr, tuple) and expr[0] is NOT:
            self._make_false(expr[1], stack, lambda dep: step(f"!{dep}"))
        else:
            raise _Blocked(step(f"{_with_values(expr)}, which is false"))
        if expr_value(expr) < level:
            raise _Blocked(step(f"{_with_values(expr)}, which stays false"))

    def _make_false(self, expr: object, stack: tuple[str, ...], step: Callable[[str], str]) -> None:
        if expr_value(expr) == 0:
            return
        if isinstance(expr, Symbol):
            self._leaf(expr, "n", stack, step)
        elif isinstance(expr, tuple) and expr[0] is AND:
            self._alternatives([lambda e=e: self._make_false(e, stack, step) for e in expr[1:]])
        elif isinstance(expr, tuple) and expr[0] is OR:
            self._make_false(expr[1], stack, step)
            self._make_false(expr[2], stack, step)
        elif isinstance(expr, tuple) and expr[0] is NOT:
            self._make_true(expr[1], 2, stack, step)
        else:
            raise _Blocked(step(f"!({_with_values(expr)}), which is false"))
        if expr_value(expr):
            raise _Blocked(step(f"!({_with_values(expr)}), which stays false"))

    def _leaf(self, sym: Symbol, value: str, stack: tuple[str, ...], step: Callable) -> None:
        if sym.is_constant or not sym.nodes:
            raise _Blocked(step(f"{expr_str(sym)}, which is {sym.str_value or 'undefined'}"))
        try:
            self._achieve(sym, value, stack)
        except _Blocked as blocked:
            raise blocked.under(step(_named(sym))) from None


def _tri(sym: Symbol, value: str) -> int:
    """The tristate level of a value (n/m/y); other types count as on when non-empty."""
    if sym.orig_type in (BOOL, TRISTATE):
        return kconfiglib.STR_TO_TRI.get(value, 0)
    return 2 if value else 0


def _terms(expr: object) -> list[object]:
    """The OR-ed terms of a select/imply expression (none for n)."""
    return [term for term in split_expr(expr, OR) if not _is_n(term)]


def _is_n(expr: object) -> bool:
    return isinstance(expr, Symbol) and expr.is_constant and expr.name == "n"


def _dep_names(sym: Symbol) -> set[str]:
    return {_named(item) for item in kconfiglib.expr_items(sym.direct_dep)}


def _suggest(kconf: kconfiglib.Kconfig, name: str) -> str | None:
    close = difflib.get_close_matches(name, [s.name for s in kconf.unique_defined_syms], n=3)
    return f"did you mean {', '.join(close)}?" if close else None


# --- Explaining values -------------------------------------------------------------------


def why_not(sym: Symbol, value: str) -> str:
    """A one-line reason why `sym` does not have `value` (for dropped lines and errors)."""
    if not sym.nodes:
        return "this kernel has no such symbol"
    active = [t for t in split_expr(sym.rev_dep, OR) if expr_value(t)]
    if value == "n" and active:
        return "selected by " + ", ".join(_with_values(t) for t in active)
    if not _has_prompt(sym):
        return f"{sym.name} has no prompt; {_value_reason(sym)}"
    if sym.visibility == 0:
        conds = [_with_values(node.prompt[1]) for node in sym.nodes if node.prompt]
        return "its prompt is hidden: it needs " + " or ".join(conds)
    if value == "y" and sym.visibility == 1 and sym.orig_type is TRISTATE:
        return f"its dependencies allow m at most: {_with_values(sym.direct_dep)}"
    if sym.choice is not None and value == "y" and sym.choice.selection is not sym:
        chosen = sym.choice.selection
        return f"its choice selected {chosen.name if chosen else 'nothing'}"
    return f"it is {sym.str_value or 'empty'}: {_value_reason(sym)}"


def _active_default(sym: Symbol) -> tuple[object, object, object] | None:
    for node in sym.nodes:
        for default, cond in node.defaults:
            if expr_value(cond):
                return node, default, cond
    return None


def _value_reason(sym: Symbol, origins: Mapping[str, str] | None = None) -> str:
    """Why sym has its current value, in one phrase."""
    origins = origins or {}
    rev = expr_value(sym.rev_dep)
    user_counts = sym.user_value is not None and sym.visibility > 0
    if sym.orig_type in (BOOL, TRISTATE) and rev and rev == sym.tri_value:
        selectors = [_first_symbol(t) for t in split_expr(sym.rev_dep, OR) if expr_value(t)]
        return "selected by " + ", ".join(_named(s) for s in selectors)
    if user_counts and sym.choice is None:
        return f"assigned by {origins.get(sym.name, 'a user value')}"
    if sym.choice is not None:
        chosen = sym.choice.selection
        return f"member of a choice whose selection is {chosen.name if chosen else 'empty'}"
    found = _active_default(sym)
    if found is not None:
        node, default, cond = found
        when = "" if cond is sym.kconfig.y else f" if {_with_values(cond)}"
        text = f"default {expr_str(default)}{when} ({node.filename}:{node.linenr})"
        if sym.orig_type in (BOOL, TRISTATE) and expr_value(sym.direct_dep) < 2:
            text += f", limited by its dependencies {_with_values(sym.direct_dep)}"
        return text
    if expr_value(sym.weak_rev_dep):
        return "implied by " + _with_values(sym.weak_rev_dep)
    return "no visible prompt, selector or default gives it a value"


def explain(kconf: kconfiglib.Kconfig, name: str, origins: Mapping[str, str] | None = None) -> str:
    """Why a symbol has its value: type, value, prompts, dependencies, selectors, defaults."""
    name = name.removeprefix("CONFIG_")
    sym = kconf.syms.get(name)
    if sym is None or not sym.nodes:
        raise FwgenError(
            f"this kernel's Kconfig has no symbol {name}",
            _suggest(kconf, name) or "give the name without CONFIG_, e.g. SYSCTL",
        )
    kind = kconfiglib.TYPE_TO_STR[sym.orig_type]
    lines = [f"{sym.name} = {sym.str_value or '(empty)'}  [{kind}]"]
    lines.append(f"  because: {_value_reason(sym, origins)}")
    lines += _explain_nodes(sym)
    lines.append(f"  depends on: {_with_values(sym.direct_dep)}")
    lines += _explain_reverse(sym)
    lines += _explain_defaults(sym)
    lines += _explain_assignment(sym, origins or {})
    return "\n".join(lines) + "\n"


def _explain_nodes(sym: Symbol) -> list[str]:
    lines = []
    for node in sym.nodes:
        where = f"{node.filename}:{node.linenr}"
        if node.prompt:
            text, cond = node.prompt
            shown = "" if cond is sym.kconfig.y else f" if {_with_values(cond)}"
            state = "visible" if expr_value(cond) else "hidden"
            lines.append(f'  defined at {where}, prompt "{text}"{shown} ({state})')
        else:
            lines.append(f"  defined at {where}, no prompt (only select or a default sets it)")
        for target, cond in node.selects:
            when = "" if cond is sym.kconfig.y else f" if {_with_values(cond)}"
            lines.append(f"  selects {target.name}{when}")
        for target, cond in node.implies:
            when = "" if cond is sym.kconfig.y else f" if {_with_values(cond)}"
            lines.append(f"  implies {target.name}{when}")
    return lines


def _explain_reverse(sym: Symbol) -> list[str]:
    lines = []
    for label, expr in (("selected by", sym.rev_dep), ("implied by", sym.weak_rev_dep)):
        for term in split_expr(expr, OR):
            if term is sym.kconfig.n:
                continue
            selector = _first_symbol(term)
            state = "active" if expr_value(term) else "inactive"
            lines.append(f"  {label} {_named(selector)}: {_with_values(term)} ({state})")
    return lines


def _explain_defaults(sym: Symbol) -> list[str]:
    lines = []
    applied = _active_default(sym)
    for node in sym.nodes:
        for default, cond in node.defaults:
            when = "" if cond is sym.kconfig.y else f" if {_with_values(cond)}"
            mark = " (applies)" if applied and applied[1] is default and applied[0] is node else ""
            lines.append(
                f"  default {expr_str(default)}{when} ({node.filename}:{node.linenr}){mark}"
            )
    return lines


def _explain_assignment(sym: Symbol, origins: Mapping[str, str]) -> list[str]:
    if sym.user_value is None:
        return []
    value = sym.user_value
    shown = kconfiglib.TRI_TO_STR[value] if sym.orig_type in (BOOL, TRISTATE) else value
    where = origins.get(sym.name, "a user value")
    if _same_value(sym.str_value, str(shown)):
        return [f"  assigned {shown} by {where}"]
    return [f"  assigned {shown} by {where}, without effect: {why_not(sym, str(shown))}"]


# --- The whole configuration -------------------------------------------------------------


@dataclass
class KernelConfig:
    """A resolved kernel configuration, ready to write."""

    kconf: kconfiglib.Kconfig
    srctree: Path
    version: str
    sources: str
    requirements: list[Assignment]
    changes: list[str]
    origins: dict[str, str]

    def header(self) -> str:
        return (
            "#\n# Automatically generated file; DO NOT EDIT.\n"
            f"# Linux/arm {self.version} Kernel Configuration\n"
            f"# fwgen: {self.sources}\n"
            f"# requirements: {' '.join(r.text for r in self.requirements) or 'none'}\n#\n"
        )

    def text(self) -> str:
        """The full .config, as `write` would write it."""
        with tempfile.TemporaryDirectory(prefix="fwgen-config-") as scratch:
            path = Path(scratch) / ".config"
            self.write(path)
            return path.read_text(encoding="utf-8")

    def write(self, path: Path) -> None:
        """Write the full .config atomically, re-checked as the build stages will check it."""

        def write_checked(tmp: str) -> None:
            self.kconf.write_config(tmp, self.header(), False)
            verify_config(Path(tmp), [r.text for r in self.requirements])

        _atomic_write(path, write_checked)
        _drain_warnings(self.kconf)

    def write_defconfig(self, path: Path) -> None:
        """Write a minimal defconfig (`make savedefconfig` format) atomically."""
        _atomic_write(path, lambda tmp: self.kconf.write_min_config(tmp, self.header()))
        _drain_warnings(self.kconf)

    def explain(self, name: str) -> str:
        return explain(self.kconf, name, self.origins)


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    try:
        # `tmp` exists, empty (mode 0666 minus umask): kconfiglib skips writing identical files.
        with fsutil.replacing(path) as tmp:
            write(str(tmp))
    except OSError as e:
        raise FwgenError(f"cannot write {path}: {e.strerror}") from e


def defconfig_path(srctree: Path, defconfig: str | Path, arch: str = "arm") -> Path:
    """arch/<arch>/configs/<name> of the tree, or the given path if it names a file."""
    if isinstance(defconfig, Path) or "/" in defconfig:
        path = Path(defconfig)
    else:
        path = srctree / "arch" / arch / "configs" / defconfig
    if not path.is_file():
        configs = srctree / "arch" / arch / "configs"
        names = [p.name for p in configs.glob("*_defconfig")] if configs.is_dir() else []
        close = difflib.get_close_matches(Path(defconfig).name, names, n=3)
        raise FwgenError(
            f"no defconfig {path}",
            f"did you mean {', '.join(close)}?" if close else "check the board recipe",
        )
    return path


def _record_origins(origins: dict[str, str], assignments: Sequence[Assignment]) -> None:
    for a in assignments:
        origins[a.name] = f"{a.where} ('{a.text}')"


def _load_assignments(kconf: kconfiglib.Kconfig, path: Path, label: str, replace: bool) -> None:
    kconf.load_config(str(path), replace=replace)
    for name in kconf.missing_syms:
        log.debug("%s assigns %s, which this kernel does not define", label, name[0])
    _drain_warnings(kconf)


def _check_earlier(
    kconf: kconfiglib.Kconfig, earlier: Sequence[Assignment], latest: Assignment
) -> None:
    for req in earlier:
        sym = kconf.syms[req.name]
        if not _has_value(sym, req.value):
            raise FwgenError(
                f"the requirements conflict: meeting {latest.text} undoes {req.text} "
                f"({why_not(sym, req.value)})",
                "drop or change one of the two requirements",
            )


def _check_results(
    kconf: kconfiglib.Kconfig, requirements: Sequence[Assignment], fragment: Sequence[Assignment]
) -> None:
    """Refuse a config that lost a requirement or a fragment line (cf. is_defconfig_valid)."""
    lost = [r for r in requirements if not _has_value(kconf.syms[r.name], r.value)]
    if lost:
        raise FwgenError(
            "the requirements conflict: once all were applied, these no longer hold:\n"
            + "\n".join(f"  {r.text}: {why_not(kconf.syms[r.name], r.value)}" for r in lost),
            "drop or change one of the conflicting requirements",
        )
    dropped = []
    for a in fragment:
        sym = kconf.syms.get(a.name)
        if sym is None or not sym.nodes:
            dropped.append(f"  {a.where}: '{a.text}': this kernel has no symbol {a.name}")
        elif not _has_value(sym, a.value):
            actual = sym.str_value or "empty"
            dropped.append(f"  {a.where}: '{a.text}' gives {actual}: {why_not(sym, a.value)}")
    if dropped:
        raise FwgenError(
            "fragment lines that do not survive in the final config:\n" + "\n".join(dropped),
            "make their dependencies hold in the fragment too, or remove the lines",
        )


def configure(
    srctree: Path,
    *,
    defconfig: str | Path,
    requirements: Sequence[str] = (),
    fragment: Path | None = None,
    fragment_label: str | None = None,
    cross_compile: str = DEFAULT_CROSS_COMPILE,
    arch: str = "arm",
    tree: kconfiglib.Kconfig | None = None,
) -> KernelConfig:
    """defconfig + fragment + requirements, resolved and verified (FwgenError otherwise).

    `tree` reuses a `load_tree()` result of the same srctree (loading the defconfig resets
    every value); the returned KernelConfig then shares it.
    """
    reqs = [parse_requirement(text) for text in requirements]
    srctree = Path(srctree).resolve()
    kconf = tree or load_tree(srctree, cross_compile=cross_compile, arch=arch)
    base = defconfig_path(srctree, defconfig, arch)
    base_label = str(base.relative_to(srctree)) if base.is_relative_to(srctree) else str(base)
    origins: dict[str, str] = {}
    _load_assignments(kconf, base, base_label, replace=True)
    _record_origins(origins, read_fragment(base, base_label))
    lines: list[Assignment] = []
    if fragment is not None:
        label = fragment_label or str(fragment)
        lines = read_fragment(fragment, label)
        _load_assignments(kconf, fragment, label, replace=False)
        _record_origins(origins, lines)
    pinned = {a.name: a for a in lines}
    resolver = _Resolver(kconf, pinned)
    for number, req in enumerate(reqs):
        resolver.require(req)
        pinned[req.name] = req  # a later requirement must not change this symbol
        _check_earlier(kconf, reqs[:number], req)
    for change in resolver.actions:
        log.info("kconfig: set %s to meet the requirements", change)
        origins[change.split("=", 1)[0]] = "fwgen's requirement resolver"
    _check_results(kconf, reqs, lines)
    _drain_warnings(kconf)
    sources = " + ".join([base_label, *([fragment_label or str(fragment)] if fragment else [])])
    return KernelConfig(
        kconf, srctree, kernel_version(srctree), sources, reqs, resolver.actions, origins
    )


def configure_variant(
    variant: KernelVariant, srctree: Path, *, cross_compile: str = DEFAULT_CROSS_COMPILE
) -> KernelConfig:
    """The configuration a board's kernel variant asks for, from an extracted source tree."""
    return configure(
        srctree,
        defconfig=variant.defconfig,
        requirements=variant.requirements,
        fragment=variant.fragment_path(),
        fragment_label=paths.shown(variant.fragment_path()),
        cross_compile=cross_compile,
    )
