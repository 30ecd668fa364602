"""One smoke session on the guest's serial console: log in, run each check (setup, command,
expected output and exit code, polling), power off; a kernel fault or a silent console ends
it at once.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from fwgen import qemu
from fwgen.board_smoke import SMOKE_VARIABLE_RE, Smoke, SmokeCheck
from fwgen.console import (
    CommandResult,
    Console,
    ConsoleClosed,
    ConsoleError,
    ConsoleSilent,
    ConsoleTimeout,
    Deadline,
    KernelFault,
    LogFile,
)
from fwgen.smoke_report import (
    FAILED,
    LOGIN_STEP,
    PASSED,
    POWEROFF_STEP,
    SILENT,
    SKIPPED,
    CheckResult,
)


def render(text: str, values: dict[str, str], *, regex: bool = False) -> str:
    """`{name}` replaced by its value (escaped for a regex when `regex`)."""

    def one(match: re.Match) -> str:
        value = values[match.group(1)]
        return re.escape(value) if regex else value

    return SMOKE_VARIABLE_RE.sub(one, text)


class ConsoleLog:
    """The console log file, as plain lines: QEMU's CR CR LF line ends become LF."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8", errors="replace")

    def __enter__(self) -> ConsoleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def write(self, text: str) -> int:
        return self.file.write(text.replace("\r", ""))

    def flush(self) -> None:
        self.file.flush()


def log_header(log: LogFile, argv: list[str], multiplier: float) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    log.write(f"### fwgen: host cpus {os.cpu_count()}, load average {load}\n")
    log.write(f"### fwgen: timeout multiplier {multiplier}\n")
    log.write(f"### fwgen: {' '.join(argv)}\n")
    log.flush()


def run_session(
    console: Console,
    smoke: Smoke,
    values: dict[str, str],
    *,
    log: LogFile,
    multiplier: float = 1.0,
    keep_going: bool = False,
    process: qemu.QemuProcess | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Log in, run the checks, power off, on an already started console; one result a step."""
    session = Session(console, smoke, values, multiplier, keep_going, log)
    session.process = process
    session.on_result = on_result
    return session.run_all()


FIRST_OUTPUT, BOOT, LOGIN, CHECKS, POWEROFF = (
    "first console output",
    "boot to login prompt",
    "login",
    "checks",
    "power-off",
)


class Session:
    """One boot: the login step, the checks in order, the poweroff step."""

    def __init__(
        self,
        console: Console,
        smoke: Smoke,
        values: dict[str, str],
        multiplier: float,
        keep_going: bool,
        log: LogFile,
    ) -> None:
        self.console = console
        self.smoke = smoke
        self.values = values
        self.multiplier = multiplier
        self.keep_going = keep_going
        self.log = log
        self.results: list[CheckResult] = []
        self.on_result: Callable[[CheckResult], None] | None = None
        self.process: qemu.QemuProcess | None = None
        self.started = time.monotonic()
        self.login_marks: list[tuple[str, float]] = []  # (phase, when it ended)

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(seconds * self.multiplier)

    def run_all(self) -> list[CheckResult]:
        steps: list[tuple[str, Callable[[], None]]] = [(LOGIN_STEP, self.login)]
        steps += [(c.name, lambda c=c: self.check(c)) for c in self.smoke.checks.values()]
        steps.append((POWEROFF_STEP, self.poweroff))
        stop_reason = ""
        for name, step in steps:
            if stop_reason:
                self.record(CheckResult(name, SKIPPED, message=stop_reason))
                continue
            result, stop_reason = self.step(name, step)
            self.record(result)
        return self.results

    def phases(self) -> list[tuple[str, float]]:
        """Where the time went: the login step's parts as they ended, then the checks and the
        power-off (phases that did not run are left out)."""
        found, since = [], self.started
        for phase, ended in self.login_marks:
            found.append((phase, ended - since))
            since = ended
        ran = [r for r in self.results if r.status != SKIPPED]
        checks = [r for r in ran if r.name not in (LOGIN_STEP, POWEROFF_STEP)]
        if checks:
            found.append((CHECKS, sum(r.duration for r in checks)))
        found += [(POWEROFF, r.duration) for r in ran if r.name == POWEROFF_STEP]
        return found

    def step(self, name: str, action: Callable[[], None]) -> tuple[CheckResult, str]:
        """Run one step; its result and, if nothing more can run, why."""
        self.log.write(f"\n### fwgen: step '{name}'\n")
        self.log.flush()
        started = time.monotonic()
        stop = ""
        try:
            action()
            result = CheckResult(name, PASSED)
        except _CheckFailed as e:
            result = CheckResult(name, FAILED, message=e.message, excerpt=e.excerpt)
            if not self.keep_going:
                stop = f"not run: '{name}' failed (use --keep-going to run the rest)"
            elif isinstance(e.cause, ConsoleTimeout) and not self.recover():
                stop = f"not run: the shell did not answer again after '{name}' timed out"
        except KernelFault as e:
            message = f"{e.kind}: the kernel reported a fault on the console"
            result = CheckResult(name, FAILED, message=message, excerpt=e.excerpt)
            stop = f"not run: {e.kind} during '{name}'"
        except ConsoleClosed as e:
            result = CheckResult(name, FAILED, message=self.closed_message(e), excerpt=e.excerpt)
            stop = f"not run: QEMU exited during '{name}'"
        except ConsoleSilent as e:
            result = CheckResult(name, FAILED, message=self.silent_message(e), excerpt=e.excerpt)
            stop = SILENT
        except ConsoleError as e:
            result = CheckResult(name, FAILED, message=e.message, excerpt=e.excerpt)
            stop = f"not run: '{name}' failed"
        result.duration = time.monotonic() - started
        result.deadline = self.step_deadline(name)
        if name == LOGIN_STEP and result.status == FAILED and stop != SILENT:
            stop = "not run: the system did not boot to a shell"
        return result, stop

    def step_deadline(self, name: str) -> float:
        if name == LOGIN_STEP:
            seconds = self.smoke.login.timeout
        elif name == POWEROFF_STEP:
            seconds = self.smoke.poweroff.timeout
        else:
            seconds = self.smoke.checks[name].timeout
        return seconds * self.multiplier

    def record(self, result: CheckResult) -> None:
        self.log.write(f"\n### fwgen: {result.status.upper()} '{result.name}'")
        self.log.write(f" ({result.duration:.1f} s) {result.message}\n")
        self.log.flush()
        self.results.append(result)
        if self.on_result:
            self.on_result(result)

    def closed_message(self, error: ConsoleClosed) -> str:
        if self.process is None:
            return error.message
        status = self.process.wait()
        stderr = self.process.stderr_text(1500)
        said = f"; QEMU said: {stderr}" if stderr else ""
        return f"QEMU exited (status {status}) while {error.message.split(' while ')[-1]}{said}"

    def silent_message(self, error: ConsoleSilent) -> str:
        """No console output: say so with QEMU's command line (and what QEMU said)."""
        message = (
            f"{error.message}: the guest printed nothing (wrong kernel, device tree, machine "
            "or console= setting?)"
        )
        if self.process is not None:
            message += f"; QEMU: {' '.join(self.process.argv)}"
            stderr = self.process.stderr_text(1500)
            if stderr:
                message += f"; QEMU said: {stderr}"
        return message

    def recover(self) -> bool:
        self.log.write("\n### fwgen: interrupting the hung command (Ctrl-C)\n")
        return self.console.interrupt(self.deadline(20))

    # --- the steps -------------------------------------------------------------------------

    def login(self) -> None:
        login = self.smoke.login
        deadline = self.deadline(login.timeout)
        first = self.deadline(min(login.first_output, login.timeout))
        self.console.first_output(first)
        self.login_marks.append((FIRST_OUTPUT, time.monotonic()))
        self.console.wait_for_login_prompt(deadline, login.prompt)
        self.login_marks.append((BOOT, time.monotonic()))
        self.console.log_in(deadline, user=login.user, password=login.password)
        self.login_marks.append((LOGIN, time.monotonic()))

    def check(self, check: SmokeCheck) -> None:
        deadline = self.deadline(check.timeout)
        if check.setup:
            setup = self.command(render(check.setup, self.values), deadline)
            if setup.exit_code != 0:
                raise _CheckFailed(f"setup exited with {setup.exit_code}", setup.output)
        command = render(check.run, self.values)
        expect = render(check.expect, self.values, regex=True)
        while True:
            result = self.command(command, deadline)
            problem = _judge(result.output, result.exit_code, check.expect_exit, expect)
            if problem is None:
                return
            if check.poll <= 0 or deadline.remaining() <= check.poll:
                if check.poll > 0:
                    problem += f" (polled for {deadline.seconds:.0f} s)"
                raise _CheckFailed(problem, result.output)
            time.sleep(check.poll)

    def command(self, command: str, deadline: Deadline) -> CommandResult:
        try:
            return self.console.run(command, deadline)
        except ConsoleTimeout as e:
            raise _CheckFailed(e.message, e.excerpt, cause=e) from None

    def poweroff(self) -> None:
        poweroff = self.smoke.poweroff
        deadline = self.deadline(poweroff.timeout)
        self.console.send_line(poweroff.run)
        try:
            if poweroff.expect:
                self.console.expect([poweroff.expect], deadline, f"/{poweroff.expect}/")
            self.console.wait_closed(deadline, "QEMU to exit after the power-off")
        except ConsoleTimeout as e:
            raise _CheckFailed(e.message, e.excerpt) from None
        except ConsoleClosed as e:
            raise _CheckFailed(
                f"QEMU exited before the console showed /{poweroff.expect}/", e.excerpt
            ) from None
        status = self.process.wait() if self.process else 0
        if status != 0:
            raise _CheckFailed(f"QEMU exited with status {status} after the power-off")


class _CheckFailed(Exception):
    def __init__(self, message: str, excerpt: str = "", cause: Exception | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.excerpt = excerpt
        self.cause = cause


def _judge(output: str, exit_code: int, expect_exit: int, expect: str) -> str | None:
    if exit_code != expect_exit:
        return f"exit code {exit_code}, expected {expect_exit}"
    if expect and not re.search(expect, output, re.MULTILINE):
        return f"output does not match /{expect}/"
    return None
