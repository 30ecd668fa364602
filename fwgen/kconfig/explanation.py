"""Explaining values: why a symbol has its value, or does not have the one asked for."""

from __future__ import annotations

from collections.abc import Mapping

import kconfiglib
from kconfiglib import BOOL, OR, TRISTATE, Symbol, expr_str, expr_value, split_expr

from fwgen.errors import FwgenError
from fwgen.kconfig.symbols import first_symbol, has_prompt, named, suggest, with_values
from fwgen.kconfig.values import same_value


def why_not(sym: Symbol, value: str) -> str:
    """A one-line reason why `sym` does not have `value` (for dropped lines and errors)."""
    if not sym.nodes:
        return "this kernel has no such symbol"
    active = [t for t in split_expr(sym.rev_dep, OR) if expr_value(t)]
    if value == "n" and active:
        return "selected by " + ", ".join(with_values(t) for t in active)
    if not has_prompt(sym):
        return f"{sym.name} has no prompt; {_value_reason(sym)}"
    if sym.visibility == 0:
        conds = [with_values(node.prompt[1]) for node in sym.nodes if node.prompt]
        return "its prompt is hidden: it needs " + " or ".join(conds)
    if value == "y" and sym.visibility == 1 and sym.orig_type is TRISTATE:
        return f"its dependencies allow m at most: {with_values(sym.direct_dep)}"
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
        selectors = [first_symbol(t) for t in split_expr(sym.rev_dep, OR) if expr_value(t)]
        return "selected by " + ", ".join(named(s) for s in selectors)
    if user_counts and sym.choice is None:
        return f"assigned by {origins.get(sym.name, 'a user value')}"
    if sym.choice is not None:
        chosen = sym.choice.selection
        return f"member of a choice whose selection is {chosen.name if chosen else 'empty'}"
    found = _active_default(sym)
    if found is not None:
        node, default, cond = found
        when = "" if cond is sym.kconfig.y else f" if {with_values(cond)}"
        text = f"default {expr_str(default)}{when} ({node.filename}:{node.linenr})"
        if sym.orig_type in (BOOL, TRISTATE) and expr_value(sym.direct_dep) < 2:
            text += f", limited by its dependencies {with_values(sym.direct_dep)}"
        return text
    if expr_value(sym.weak_rev_dep):
        return "implied by " + with_values(sym.weak_rev_dep)
    return "no visible prompt, selector or default gives it a value"


def explain(kconf: kconfiglib.Kconfig, name: str, origins: Mapping[str, str] | None = None) -> str:
    """Why a symbol has its value: type, value, prompts, dependencies, selectors, defaults."""
    name = name.removeprefix("CONFIG_")
    sym = kconf.syms.get(name)
    if sym is None or not sym.nodes:
        raise FwgenError(
            f"this kernel's Kconfig has no symbol {name}",
            suggest(kconf, name) or "give the name without CONFIG_, e.g. SYSCTL",
        )
    kind = kconfiglib.TYPE_TO_STR[sym.orig_type]
    lines = [f"{sym.name} = {sym.str_value or '(empty)'}  [{kind}]"]
    lines.append(f"  because: {_value_reason(sym, origins)}")
    lines += _explain_nodes(sym)
    lines.append(f"  depends on: {with_values(sym.direct_dep)}")
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
            shown = "" if cond is sym.kconfig.y else f" if {with_values(cond)}"
            state = "visible" if expr_value(cond) else "hidden"
            lines.append(f'  defined at {where}, prompt "{text}"{shown} ({state})')
        else:
            lines.append(f"  defined at {where}, no prompt (only select or a default sets it)")
        for target, cond in node.selects:
            when = "" if cond is sym.kconfig.y else f" if {with_values(cond)}"
            lines.append(f"  selects {target.name}{when}")
        for target, cond in node.implies:
            when = "" if cond is sym.kconfig.y else f" if {with_values(cond)}"
            lines.append(f"  implies {target.name}{when}")
    return lines


def _explain_reverse(sym: Symbol) -> list[str]:
    lines = []
    for label, expr in (("selected by", sym.rev_dep), ("implied by", sym.weak_rev_dep)):
        for term in split_expr(expr, OR):
            if term is sym.kconfig.n:
                continue
            selector = first_symbol(term)
            state = "active" if expr_value(term) else "inactive"
            lines.append(f"  {label} {named(selector)}: {with_values(term)} ({state})")
    return lines


def _explain_defaults(sym: Symbol) -> list[str]:
    lines = []
    applied = _active_default(sym)
    for node in sym.nodes:
        for default, cond in node.defaults:
            when = "" if cond is sym.kconfig.y else f" if {with_values(cond)}"
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
    if same_value(sym.str_value, str(shown)):
        return [f"  assigned {shown} by {where}"]
    return [f"  assigned {shown} by {where}, without effect: {why_not(sym, str(shown))}"]
