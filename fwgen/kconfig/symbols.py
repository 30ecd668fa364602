"""Describing symbols: names with their Kconfig location, expressions with their values."""

from __future__ import annotations

import difflib

import kconfiglib
from kconfiglib import AND, STRING, Symbol, expr_str

from fwgen.kconfig.values import same_value


def _loc(sc: Symbol) -> str:
    nodes = getattr(sc, "nodes", None)
    if not nodes:
        return "undefined"
    return f"{nodes[0].filename}:{nodes[0].linenr}"


def named(sc: object) -> str:
    if isinstance(sc, Symbol) and not sc.is_constant:
        return f"{sc.name} ({_loc(sc)})"
    return expr_str(sc)


def with_values(expr: object) -> str:
    """An expression with each symbol's current value, e.g. 'EXPERT[=n] && PROC_FS[=y]'."""

    def show(sc: object) -> str:
        if isinstance(sc, Symbol) and not sc.is_constant and sc.nodes:
            return f"{sc.name}[={sc.str_value}]"
        return kconfiglib.standard_sc_expr_str(sc)

    return expr_str(expr, show)


def has_prompt(sym: Symbol) -> bool:
    return any(node.prompt for node in sym.nodes)


def has_value(sym: Symbol, value: str) -> bool:
    if sym.orig_type is STRING:
        return sym.str_value == value
    return same_value(sym.str_value, value)


def first_symbol(expr: object) -> object:
    while isinstance(expr, tuple) and expr[0] is AND:
        expr = expr[1]
    return expr


def suggest(kconf: kconfiglib.Kconfig, name: str) -> str | None:
    close = difflib.get_close_matches(name, [s.name for s in kconf.unique_defined_syms], n=3)
    return f"did you mean {', '.join(close)}?" if close else None
