"""Values: requirements, fragment lines, .config files (no Kconfig tree needed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kconfiglib

from fwgen.errors import FwgenError

_CONFIG_LINE_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_NOT_SET_RE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_REQUIREMENT_RE = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")


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


def config_line(assignment: Assignment) -> str:
    """The .config/fragment line that parse_config_line reads back as `assignment`: "n" is
    `# CONFIG_NAME is not set`; y, m and numbers stay bare; anything else is a quoted string."""
    name, value = assignment.name, assignment.value
    if value == "n":
        return f"# CONFIG_{name} is not set"
    if value in ("y", "m") or re.fullmatch(r"-?[0-9]+|0[xX][0-9a-fA-F]+", value):
        return f"CONFIG_{name}={value}"
    return f'CONFIG_{name}="{kconfiglib.escape(value)}"'


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


def same_value(actual: str, wanted: str) -> bool:
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
        if not same_value(values.get(req.name, "n"), req.value):
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
