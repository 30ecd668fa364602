"""The resolver: makes a requirement hold through what controls it, never changing a
symbol the fragment assigns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import kconfiglib
from kconfiglib import AND, BOOL, NOT, OR, TRISTATE, Symbol, expr_str, expr_value, split_expr

from fwgen.errors import FwgenError
from fwgen.kconfig.symbols import (
    first_symbol,
    has_prompt,
    has_value,
    named,
    suggest,
    with_values,
)
from fwgen.kconfig.values import Assignment, same_value

MAX_DEPTH = 8
MAX_CHANGES = 200
MAX_STEPS = 5000


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
class Resolver:
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
                suggest(self.kconf, req.name) or "check the spelling in board.toml",
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
            raise _Blocked(f"{named(sym)} would have to be turned off (it is {sym.str_value})")
        if not self._up and new > sym.tri_value:
            raise _Blocked(f"{named(sym)} would have to be turned on (it is {sym.str_value})")
        chosen = sym.choice.selection if sym.choice is not None else None
        if new == 2 and chosen not in (None, sym):
            raise _Blocked(f"{named(sym)} would replace {named(chosen)} in their choice")

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
        if has_value(sym, value):
            return
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise _Blocked(f"gave up at {named(sym)}: the search took over {MAX_STEPS} steps")
        if sym.name in stack:
            raise _Blocked(f"{named(sym)} depends on itself through {' -> '.join(stack)}")
        if len(stack) >= MAX_DEPTH:
            raise _Blocked(f"gave up at {named(sym)}: more than {MAX_DEPTH} levels deep")
        pin = self.pinned.get(sym.name)
        if pin is not None and not same_value(pin.value, value):
            raise _Blocked(f"{named(sym)} is forced to {pin.value} by {pin.origin()}")
        stack = (*stack, sym.name)
        if value == "n" and sym.orig_type in (BOOL, TRISTATE):
            self._lower(sym, stack)
        else:
            self._raise(sym, value, stack)
        if not has_value(sym, value):
            raise _Blocked(f"{named(sym)} stays {sym.str_value or 'unset'} once set to {value}")

    def _raise(self, sym: Symbol, value: str, stack: tuple[str, ...]) -> None:
        attempts = []
        if has_prompt(sym):
            attempts.append(lambda: self._through_prompt(sym, value, stack))
        if sym.orig_type in (BOOL, TRISTATE):
            for term in _terms(sym.rev_dep):
                attempts.append(lambda term=term: self._through_selector(sym, term, value, stack))
        if not attempts:
            raise _Blocked(f"{named(sym)} has no prompt and nothing selects it")
        self._alternatives(attempts)

    def _through_prompt(self, sym: Symbol, value: str, stack: tuple[str, ...]) -> None:
        # A bool/tristate prompt must allow the value; any other prompt only has to be visible.
        level = 2 if value == "y" and sym.orig_type in (BOOL, TRISTATE) else 1
        direct = _dep_names(sym)

        def step(dep: str) -> str:
            verb = "depends on" if dep.lstrip("!") in direct else "has a prompt only if"
            return f"{named(sym)} {verb} {dep}"

        prompts = [node.prompt[1] for node in sym.nodes if node.prompt]
        self._alternatives([lambda c=c: self._make_true(c, level, stack, step) for c in prompts])
        if not has_value(sym, value):  # a visible prompt may be all it took
            self._set(sym, value)
        if not has_value(sym, value):
            raise _Blocked(f"{named(sym)} stays {sym.str_value} when set to {value}")

    def _through_selector(
        self, sym: Symbol, term: object, value: str, stack: tuple[str, ...]
    ) -> None:
        self._make_true(term, 1 if value == "m" else 2, stack, self._selected_step(sym, term))
        if not has_value(sym, value):
            selector = named(first_symbol(term))
            raise _Blocked(f"{selector} selects {named(sym)} as {sym.str_value}, not {value}")

    def _lower(self, sym: Symbol, stack: tuple[str, ...]) -> None:
        for term in _terms(sym.rev_dep):
            if expr_value(term):
                self._make_false(term, stack, self._selected_step(sym, term))
        if sym.tri_value == 0:
            return
        if not has_prompt(sym):
            raise _Blocked(f"{named(sym)} has no prompt and its default gives {sym.str_value}")

        def step(dep: str) -> str:
            return f"{named(sym)} has a prompt only if {dep}"

        prompts = [node.prompt[1] for node in sym.nodes if node.prompt]
        self._alternatives([lambda c=c: self._make_true(c, 1, stack, step) for c in prompts])
        self._set(sym, "n")

    @staticmethod
    def _selected_step(sym: Symbol, term: object) -> Callable[[str], str]:
        selector = named(first_symbol(term))
        prefix = "has no prompt and " if not has_prompt(sym) else ""
        selected = f"{named(sym)} {prefix}is selected by {selector}"

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
            raise _Blocked(step(f"{with_values(expr)}, which is false"))
        if expr_value(expr) < level:
            raise _Blocked(step(f"{with_values(expr)}, which stays false"))

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
            raise _Blocked(step(f"!({with_values(expr)}), which is false"))
        if expr_value(expr):
            raise _Blocked(step(f"!({with_values(expr)}), which stays false"))

    def _leaf(self, sym: Symbol, value: str, stack: tuple[str, ...], step: Callable) -> None:
        if sym.is_constant or not sym.nodes:
            raise _Blocked(step(f"{expr_str(sym)}, which is {sym.str_value or 'undefined'}"))
        try:
            self._achieve(sym, value, stack)
        except _Blocked as blocked:
            raise blocked.under(step(named(sym))) from None


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
    return {named(item) for item in kconfiglib.expr_items(sym.direct_dep)}
