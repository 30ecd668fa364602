"""Typed, strict loading of TOML tables into dataclasses.

A recipe is plain data; this module turns it into frozen dataclasses and refuses anything it
does not understand, naming the file and the dotted key: unknown keys, missing keys, wrong
types. Field-level rules (a sha256 must be 64 hex digits, ...) are declared with `check=` in
the field metadata so the schema reads as one place.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fwgen.errors import FwgenError

T = TypeVar("T")

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class RecipeError(FwgenError):
    pass


def sha256_hex(value: str) -> str | None:
    """A field check: None if fine, else what is wrong."""
    if not SHA256_RE.match(value):
        return "must be a sha256: 64 lowercase hexadecimal digits"
    return None


def non_empty(value: Any) -> str | None:
    return "must not be empty" if len(value) == 0 else None


def field(
    *, check: Callable[[Any], str | None] | None = None, internal: bool = False, **kwargs: Any
) -> Any:
    """A dataclass field with a `check` (see the module docstring). An `internal` field is set
    by the loader, never read from the TOML (a key of that name is refused as unknown)."""
    metadata = dict(kwargs.pop("metadata", {}))
    if check is not None:
        metadata["check"] = check
    if internal:
        metadata["internal"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: a directory, not a recipe file") from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        shown, new = shlex.quote(str(path)), shlex.quote(f"{path}.utf-8")
        line = raw[: e.start].count(b"\n") + 1
        raise RecipeError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); a recipe "
            "is TOML, which is UTF-8",
            f"save it as UTF-8, e.g. (if it is Latin-1): iconv -f LATIN1 -t UTF-8 -o {new} "
            f"{shown} && mv {new} {shown}",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}", "correct the syntax") from None


def build(cls: type[T], data: Any, source: Path, key: str = "") -> T:
    """Turn `data` (from TOML) into an instance of dataclass `cls`, strictly."""
    return _convert(cls, data, source, key)


def _where(source: Path, key: str) -> str:
    return f"{source}: key '{key}'" if key else f"{source}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a table of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _toml_type(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _convert(tp: Any, value: Any, source: Path, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, source, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{_where(source, key)}: expected a table, got {_toml_type(value)}")
        return _convert_table(tp, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise RecipeError(
                f"{_where(source, key)}: expected {_type_name(tp)}, got {_toml_type(value)}"
            )
        item = typing.get_args(tp)[0]
        return tuple(_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(
                f"{_where(source, key)}: expected {_type_name(tp)}, got {_toml_type(value)}"
            )
        _, item = typing.get_args(tp)
        return {k: _convert(item, v, source, _join(key, k)) for k, v in value.items()}
    # TOML booleans are not integers here, whatever Python thinks.
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise RecipeError(
            f"{_where(source, key)}: expected {_type_name(tp)}, got {_toml_type(value)} ({value!r})"
        )
    return value


def _join(key: str, name: str) -> str:
    shown = name if re.match(r"^[A-Za-z0-9_-]+$", name) else f'"{name}"'
    return f"{key}.{shown}" if key else shown


def _convert_table(cls: Any, table: dict[str, Any], source: Path, key: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")
    }
    unknown = sorted(set(table) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise RecipeError(
            f"{_where(source, _join(key, unknown[0]))}: unknown key",
            f"remove it or use one of: {known}",
        )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name not in table:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise RecipeError(
                    f"{_where(source, sub)}: missing",
                    f"add '{name} = ...' ({_type_name(hints[name])})",
                )
            continue
        converted = _convert(hints[name], table[name], source, sub)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(converted)
            if problem:
                raise RecipeError(f"{_where(source, sub)}: {problem} (got {table[name]!r})")
        values[name] = converted
    obj = cls(**values)
    # Rules that involve several fields of one table: `recipe_check()` says what is wrong.
    table_check = getattr(obj, "recipe_check", None)
    if callable(table_check):
        problem = table_check()
        if problem:
            raise RecipeError(f"{_where(source, key)}: {problem}")
    return obj
