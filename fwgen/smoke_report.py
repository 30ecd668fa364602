"""A smoke run's results: each step's verdict, the summary, JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from fwgen import fsutil
from fwgen.board_smoke import Smoke

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
LOGIN_STEP = "boot to login"
POWEROFF_STEP = "clean poweroff"
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
