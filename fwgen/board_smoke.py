"""The [smoke] part of a board recipe: the checks `fwgen smoke` runs on the target, as data."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from fwgen.recipe import field, non_empty

# output and exit code. `{name}` in `run`, `setup` and `expect` is a variable: one of these
# built-ins (from images/manifest.json, else the recipe) or a key of [smoke.vars]. `${name}`
# stays a shell variable; regex repetitions like `{2}` are not names.
SMOKE_BUILTINS = ("board", "variant", "kernel_version", "kernel_series")
SMOKE_VARIABLE_RE = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SAFE_VALUE_RE = re.compile(r"^[A-Za-z0-9._+/=:@%,-]*$")


def _regex(value: str) -> str | None:
    try:
        re.compile(SMOKE_VARIABLE_RE.sub("x", value))
    except re.error as e:
        return f"not a valid regular expression: {e}"
    return None


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must not be negative"


def _variables(value: dict[str, str]) -> str | None:
    for name, text in value.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            return f"{name!r} is not a variable name (letters, digits, _)"
        if name in SMOKE_BUILTINS:
            return f"{name!r} is built in ({', '.join(SMOKE_BUILTINS)}); choose another name"
        if not _SAFE_VALUE_RE.match(text):
            return (
                f"{name} = {text!r}: values are pasted into shell commands unquoted, so only "
                "letters, digits and . _ + / = : @ % , - are allowed"
            )
    return None


@dataclass(frozen=True)
class SmokeCheck:
    """One check, named by its key under [smoke.checks]: `setup` once (must exit 0), then
    `run` until it passes or `timeout` ends.

    It passes when `run` exits with `expect_exit` and, if `expect` is set, its output matches
    that regex (searched line-wise: ^ and $ match at line ends). `poll` > 0 retries a failing
    `run` every `poll` seconds within the timeout, for effects that take a moment to appear.
    """

    run: str = field(check=non_empty)
    setup: str = ""
    expect: str = field(default="", check=_regex)
    expect_exit: int = 0
    poll: float = field(default=0.0, check=_non_negative)
    timeout: float = field(default=30.0, check=_positive)
    name: str = dataclasses.field(default="", init=False)  # the key, set by Smoke

    def texts(self) -> tuple[str, ...]:
        return (self.setup, self.run, self.expect)


@dataclass(frozen=True)
class SmokeLogin:
    """Booting to the serial login prompt and logging in; one deadline for all of it.

    A console that shows nothing at all for `first_output` seconds (scaled like every
    timeout) ends the run at once: the kernel, device tree or console= setting is wrong,
    and waiting out `timeout` would not change that.
    """

    prompt: str = field(default="login:", check=_regex)
    user: str = field(default="root", check=non_empty)
    password: str = ""
    timeout: float = field(default=300.0, check=_positive)
    first_output: float = field(default=20.0, check=_positive)


@dataclass(frozen=True)
class SmokePoweroff:
    """The last step: `run` starts a power-off; QEMU must then exit by itself with status 0.

    `expect` (a regex, optional) must appear on the console first.
    """

    run: str = field(default="poweroff", check=non_empty)
    expect: str = field(default="reboot: Power down", check=_regex)
    timeout: float = field(default=120.0, check=_positive)


@dataclass(frozen=True)
class Smoke:
    """[smoke]: how to log in and power off, variables, and the checks in the order written."""

    login: SmokeLogin = SmokeLogin()
    poweroff: SmokePoweroff = SmokePoweroff()
    vars: dict[str, str] = field(default_factory=dict, check=_variables)
    checks: dict[str, SmokeCheck] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, check in self.checks.items():
            object.__setattr__(check, "name", name)

    def recipe_check(self) -> str | None:
        known = set(SMOKE_BUILTINS) | set(self.vars)
        for name, check in self.checks.items():
            if not name.strip():
                return "checks: a check needs a name (its key must not be empty)"
            for text in check.texts():
                for variable in SMOKE_VARIABLE_RE.findall(text):
                    if variable not in known:
                        return (
                            f"checks.{name!r}: unknown variable {{{variable}}}; "
                            f"known: {', '.join(sorted(known))} (add it under [smoke.vars])"
                        )
        return None
