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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fwgen import fsutil, layout, qemu, smoke_report, smoke_session
from fwgen.board import Board
from fwgen.console import (
    Console,
)
from fwgen.errors import FwgenError
from fwgen.manifest import Manifest

RESULT = "result.json"  # in the smoke dir: the verdict for exactly these images


def variables(board: Board, images: qemu.Images) -> dict[str, str]:
    """Built-in and recipe variables for the checks, from the manifest, else the recipe."""
    built = images.manifest
    version = built.kernel.version if built else board.kernel(images.variant).version
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
    on_result: Callable[[smoke_report.CheckResult], None] | None = None,
) -> smoke_report.SmokeReport:
    """Boot `images` in QEMU and run the board's smoke checks; the report says what passed.

    Raises FwgenError only when QEMU cannot be run at all (not installed). Everything that
    happens after QEMU starts, including it failing to start, is a failed step in the report.
    """
    log_dir = log_dir or smoke_dir(images.directory)
    log_dir.mkdir(parents=True, exist_ok=True)
    console_log = log_dir / "console.log"
    report = smoke_report.SmokeReport(
        board.name, images.variant, images.directory, images.root, console_log
    )
    values = variables(board, images)
    qemu.qemu_binary(board, env)
    started = time.monotonic()
    with (
        qemu.terminate_on_sigterm(),
        smoke_session.ConsoleLog(console_log) as log,
        qemu.prepared_root(images) as sd_copy,
    ):
        argv = qemu.command_line(board, images, sd_copy, smoke=True)
        smoke_session.log_header(log, argv, multiplier)
        process = qemu.QemuProcess(
            argv, console_log=log, stderr_path=log_dir / "qemu-stderr.log", env=env
        )
        with process as child:
            session = smoke_session.Session(
                Console(child), board.smoke, values, multiplier, keep_going, log
            )
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


def write_result(report: smoke_report.SmokeReport, built: Manifest | None, log_dir: Path) -> Path:
    """Record the verdict with the manifest's image hashes (what `fwgen release` checks)."""
    record = {
        "passed": report.passed,
        "board": report.board,
        "variant": report.variant,
        "root": report.root,
        "checks": {r.name: r.status for r in report.results},
        "seconds": {p: round(s, 2) for p, s in report.phases},
        "images": dict(built.images) if built else {},
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
