"""The QEMU smoke test: boot the images, log in, run the recipe's checks, power off.

The verdict comes from the guest (each check's output and exit code), not from QEMU's exit
status. A kernel fault or QEMU going away ends the run at once; a failed check ends it too
unless `keep_going`, in which case a hung check is interrupted and the rest still run.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwgen import fsutil, layout, qemu
from fwgen.board import SMOKE_VARIABLE_RE, Board, Smoke, SmokeCheck
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
from fwgen.errors import FwgenError

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
LOGIN_STEP = "boot to login"
POWEROFF_STEP = "clean poweroff"
RESULT = "result.json"  # in the smoke dir: the verdict for exactly these images
SILENT = "not run: the console stayed silent"


# A step that passes but takes more than this share of its deadline is marked slow: the next
# slower host, or a slightly slower kernel, fails it.
SLOW_SHARE = 0.5


@dataclass
class CheckResult:
    name: str
    status: str  # PASSED, FAILED or SKIPPED
    duration: float = 0.0
    message: str = ""  # why it failed or was skipped, one line
    excerpt: str = ""  # output or console lines that show it
    deadline: float = 0.0  # the step's deadline in seconds (scaled), 0 if none

    @property
    def slow(self) -> bool:
        return self.status == PASSED and 0 < self.deadline * SLOW_SHARE < self.duration


@dataclass
class SmokeReport:
    board: str
    variant: str
    images: Path
    root: str
    console_log: Path
    results: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0
    # Where the time went, in order: (phase, seconds), from starting QEMU to its exit.
    phases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.status == PASSED for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def variables(board: Board, images: qemu.Images) -> dict[str, str]:
    """Built-in and recipe variables for the checks, from the manifest, else the recipe."""
    kernel = images.manifest.get("kernel") or {}
    version = str(kernel.get("version") or board.kernel(images.variant).version)
    values = {
        "board": board.name,
        "variant": images.variant,
        "kernel_version": version,
        "kernel_series": ".".join(version.split(".")[:2]),
    }
    for name, value in values.items():
        if not re.match(r"^[A-Za-z0-9._+-]+$", value):
            raise FwgenError(f"{name} = {value!r} (from the manifest) is not a plain version")
    return {**board.smoke.vars, **values}


def render(text: str, values: dict[str, str], *, regex: bool = False) -> str:
    """`{name}` replaced by its value (escaped for a regex when `regex`)."""

    def one(match: re.Match) -> str:
        value = values[match.group(1)]
        return re.escape(value) if regex else value

    return SMOKE_VARIABLE_RE.sub(one, text)


def smoke_dir(images: Path) -> Path:
    """Where a smoke run of `images` keeps its logs: a sibling directory, `<images>-smoke`."""
    return layout.smoke_results(images.resolve())


def _as_given(images: Path, directory: Path) -> Path:
    """`directory` (next to `images`) spelled the way `images` was given (relative stays
    relative), when that names the same directory."""
    shown = Path(os.path.normpath(os.path.join(images, os.pardir, directory.name)))
    try:
        return shown if os.path.samefile(shown, directory) else directory
    except OSError:
        return directory


def results_dir(images: Path, chosen: Path | None = None) -> tuple[Path, str]:
    """Where this run's results go, and a note when that is not the default place.

    `chosen` (--results DIR) is created if needed. By default the results go next to the
    images (`smoke_dir`, where `fwgen release` looks for the verdict); when that cannot be
    written (a read-only copy of a release, say), into a new directory under $TMPDIR.
    """
    if chosen is not None:
        try:
            chosen.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FwgenError(
                f"--results {chosen}: cannot create it ({e.strerror})",
                "give a directory you can write, e.g. --results /tmp/smoke-results",
            ) from None
        if not os.access(chosen, os.W_OK):
            raise FwgenError(
                f"--results {chosen}: cannot write there",
                "give a directory you can write, e.g. --results /tmp/smoke-results",
            )
        return chosen, ""
    default = smoke_dir(images)
    try:
        default.mkdir(exist_ok=True)
        if os.access(default, os.W_OK):
            return _as_given(images, default), ""
        why = "cannot be written"
    except OSError as e:
        why = f"cannot be created ({e.strerror})"
    fallback = Path(tempfile.mkdtemp(prefix=f"fwgen-smoke-{default.name}-"))
    return (
        fallback,
        f"{default} {why}; results go to {fallback} instead (choose with --results DIR)",
    )


def run(
    board: Board,
    images: qemu.Images,
    *,
    multiplier: float = 1.0,
    keep_going: bool = False,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> SmokeReport:
    """Boot `images` in QEMU and run the board's smoke checks; the report says what passed.

    Raises FwgenError only when QEMU cannot be run at all (not installed). Everything that
    happens after QEMU starts, including it failing to start, is a failed step in the report.
    """
    log_dir = log_dir or smoke_dir(images.directory)
    log_dir.mkdir(parents=True, exist_ok=True)
    console_log = log_dir / "console.log"
    report = SmokeReport(board.name, images.variant, images.directory, images.root, console_log)
    values = variables(board, images)
    qemu.qemu_binary(board, env)
    started = time.monotonic()
    with (
        qemu.terminate_on_sigterm(),
        _ConsoleLog(console_log) as log,
        qemu.prepared_root(images) as sd_copy,
    ):
        argv = qemu.command_line(board, images, sd_copy, smoke=True)
        _log_header(log, argv, multiplier)
        process = qemu.QemuProcess(
            argv, console_log=log, stderr_path=log_dir / "qemu-stderr.log", env=env
        )
        with process as child:
            session = _Session(Console(child), board.smoke, values, multiplier, keep_going, log)
            session.process = process
            session.on_result = on_result
            report.results = session.run_all()
            report.phases = session.phases()
        stderr = process.stderr_text()
        if stderr:
            log.write(f"\n### fwgen: QEMU's stderr:\n{stderr}\n")
    report.duration = time.monotonic() - started
    write_result(report, images.manifest, log_dir)
    return report


def write_result(report: SmokeReport, manifest: dict[str, Any], log_dir: Path) -> Path:
    """Record the verdict with the manifest's image hashes (what `fwgen release` checks)."""
    record = {
        "passed": report.passed,
        "board": report.board,
        "variant": report.variant,
        "root": report.root,
        "checks": {r.name: r.status for r in report.results},
        "seconds": {p: round(s, 2) for p, s in report.phases},
        "images": dict(manifest.get("images") or {}),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = log_dir / RESULT
    fsutil.write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n", mode=0o644)
    return path


def load_result(images: Path) -> dict[str, Any] | None:
    """The last smoke verdict recorded for `images`, or None when there is none."""
    try:
        record = json.loads((smoke_dir(images) / RESULT).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


class _ConsoleLog:
    """The console log file, as plain lines: QEMU's CR CR LF line ends become LF."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8", errors="replace")

    def __enter__(self) -> _ConsoleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def write(self, text: str) -> int:
        return self.file.write(text.replace("\r", ""))

    def flush(self) -> None:
        self.file.flush()


def _log_header(log: LogFile, argv: list[str], multiplier: float) -> None:
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
    session = _Session(console, smoke, values, multiplier, keep_going, log)
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


class _Session:
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


# --- reporting -----------------------------------------------------------------------------


def name_width(smoke: Smoke) -> int:
    """The column width that fits every step name of a run."""
    return max(len(n) for n in (LOGIN_STEP, POWEROFF_STEP, *smoke.checks))


def format_result(result: CheckResult, width: int = 40) -> str:
    mark = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}[result.status]
    time_text = f"{result.duration:6.1f} s" if result.status != SKIPPED else ""
    line = f"  {mark}  {result.name:<{width}} {time_text}".rstrip()
    if result.slow:
        line += f"  (slow: {result.duration / result.deadline:.0%} of its {result.deadline:.0f} s)"
    if result.status == FAILED:
        line += f"\n        {result.message}"
        for text in _excerpt_lines(result.excerpt):
            line += f"\n        | {text}"
    return line


def _excerpt_lines(excerpt: str, limit: int = 30) -> list[str]:
    lines = excerpt.splitlines()
    if len(lines) > limit:
        lines = ["..."] + lines[-limit:]
    return lines


def format_summary(report: SmokeReport) -> str:
    counts = f"{report.count(PASSED)} passed, {report.count(FAILED)} failed"
    if report.count(SKIPPED):
        counts += f", {report.count(SKIPPED)} skipped"
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"smoke {verdict}: {counts} in {report.duration:.1f} s"]
    if report.phases:
        lines.append("time: " + ", ".join(f"{p} {s:.1f} s" for p, s in report.phases))
    slow = [r for r in report.results if r.slow]
    if slow:
        lines.append(
            f"slow (more than {SLOW_SHARE:.0%} of the deadline): "
            + "; ".join(f"{r.name} {r.duration:.1f} s of {r.deadline:.0f} s" for r in slow)
            + " (a slower host may fail them: --timeout-multiplier)"
        )
    lines.append(f"console log: {report.console_log}")
    return "\n".join(lines)


def write_junit(report: SmokeReport, path: Path) -> None:
    """JUnit XML, one testcase per step (CI systems show it as a test report)."""
    suite = ET.Element(
        "testsuite",
        name=f"fwgen smoke {report.board} {report.variant}",
        tests=str(len(report.results)),
        failures=str(report.count(FAILED)),
        errors="0",
        skipped=str(report.count(SKIPPED)),
        time=f"{report.duration:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("board", report.board),
        ("kernel variant", report.variant),
        ("images", str(report.images)),
        ("root", report.root),
        ("console log", str(report.console_log)),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    classname = f"smoke.{report.board}.{report.variant}"
    for result in report.results:
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=result.name, time=f"{result.duration:.3f}"
        )
        if result.status == FAILED:
            failure = ET.SubElement(case, "failure", message=result.message)
            failure.text = result.excerpt
        elif result.status == SKIPPED:
            ET.SubElement(case, "skipped", message=result.message)
    ET.SubElement(suite, "system-out").text = f"console log: {report.console_log}"
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.replacing(path) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
