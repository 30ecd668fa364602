"""The event handler of overlays/common, run for real by the host's POSIX sh.

The kernel runs it with an environment only (no stdio); each run appends one line that the
smoke checks read: "<date> <time> source=<source> [lost=<n> ]TROUBLED_DS=<value>".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import paths

HANDLER = paths.overlays_dir() / "common" / "usr" / "sbin" / "myevent-handler"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def _run(log: Path, **env: str) -> int:
    """As call_usermodehelper() runs it: this environment only, stdio closed. PATH holds
    only what the handler needs besides logger, so nothing goes to the host's syslog."""
    tools = log.parent.parent / "tools"
    if not tools.exists():
        tools.mkdir()
        for name in ("date", "mkdir"):
            (tools / name).symlink_to(shutil.which(name) or f"/bin/{name}")
    base = {"HOME": "/", "PATH": str(tools), "MYEVENT_LOG": str(log)}
    return subprocess.run(
        [str(HANDLER)],
        env={**base, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    ).returncode


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"TROUBLED_DS": "5000", "MYEVENT_SOURCE": "event"}, "source=event TROUBLED_DS=5000"),
        (
            {"TROUBLED_DS": "6000", "MYEVENT_SOURCE": "event", "MYEVENT_LOST": "72"},
            "source=event lost=72 TROUBLED_DS=6000",
        ),
        ({"TROUBLED_DS": "2", "MYEVENT_SOURCE": "signal"}, "source=signal TROUBLED_DS=2"),
        # A kernel with only the signal patch passes no MYEVENT_SOURCE.
        ({"TROUBLED_DS": "1"}, "TROUBLED_DS=1"),
    ],
)
def test_each_run_appends_one_line_ending_in_troubled_ds(tmp_path, env, line):
    log = tmp_path / "log" / "myevent.log"
    assert _run(log, **env) == 0
    assert _run(log, **env) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    for text in lines:
        assert re.fullmatch(STAMP + re.escape(line), text), text


def test_an_unwritable_log_is_exit_status_1(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _run(blocker / "myevent.log", TROUBLED_DS="1", MYEVENT_SOURCE="event") == 1
