"""The one runner for build tools: log file, merged output, lines for progress, Ctrl-C, tail."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from fwgen import runner

SCRIPT = (
    "import sys; print('\\x1b[7m>>> one\\x1b[27m', flush=True); "
    "print('err', file=sys.stderr, flush=True); print('two', flush=True); sys.exit(3)"
)


def test_run_logs_the_command_and_merged_output_and_feeds_clean_lines(tmp_path):
    log_path = tmp_path / "logs" / "build.log"
    seen: list[str] = []
    code = runner.run([sys.executable, "-c", SCRIPT], log_path, env=os.environ, on_line=seen.append)
    assert code == 3
    text = log_path.read_text()
    assert f"$ {sys.executable} -c " in text
    assert "\x1b[7m>>> one" in text  # the log keeps what the tool printed
    assert seen == [">>> one", "err", "two"]
    assert runner.tail(log_path, 3) == [">>> one", "err", "two"]


def test_capture_returns_stdout_and_logs_stderr(tmp_path):
    log_path = tmp_path / "x.log"
    code, out = runner.capture(
        [sys.executable, "-c", "import sys; print('{\"a\"}'); print('warn', file=sys.stderr)"],
        log_path,
        env=os.environ,
    )
    assert (code, out) == (0, '{"a"}\n')
    assert log_path.read_text().splitlines()[2:] == ["warn"]  # after "", "$ cmd": stderr only


def test_ctrl_c_lets_the_command_stop_cleanly_and_says_so_in_the_log(tmp_path):
    """The command gets SIGINT and time to clean up (make removes half-made targets)."""
    log_path = tmp_path / "build.log"
    marker = tmp_path / "cleaned"
    script = (
        "import signal, sys, time, pathlib\n"
        "def stop(*_):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('yes'); sys.exit(130)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    started = threading.Event()

    def on_line(line: str) -> None:
        if line == "started":
            started.set()

    def interrupt() -> None:
        started.wait(20)
        # The terminal's Ctrl-C reaches fwgen only here; the runner passes SIGINT on.
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own SIGINT handler, as under a terminal: a suite started as a background job
    # (`scripts/test &`, nohup) inherits SIGINT ignored, and no Ctrl-C would reach fwgen.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    begin = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run([sys.executable, "-c", script], log_path, env=os.environ, on_line=on_line)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert marker.read_text() == "yes"
    assert time.monotonic() - begin < 30
    assert "*** interrupted (Ctrl-C) ***" in log_path.read_text()


def test_no_process_is_left_when_the_caller_fails(tmp_path):
    pids: list[int] = []

    def boom(line: str) -> None:
        pids.append(int(line))
        raise RuntimeError("caller bug")

    with pytest.raises(RuntimeError):
        runner.run(
            [
                sys.executable,
                "-c",
                "import os, time; print(os.getpid(), flush=True); time.sleep(60)",
            ],
            tmp_path / "l.log",
            env=os.environ,
            on_line=boom,
        )
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_a_parent_makes_settings_do_not_reach_the_tool(tmp_path):
    env = {**os.environ, "MAKEFLAGS": "-n -j9", "MAKELEVEL": "2", "KEEP": "yes"}
    script = "import os; print(os.environ.get('MAKEFLAGS'), os.environ.get('KEEP'))"
    seen: list[str] = []
    assert (
        runner.run([sys.executable, "-c", script], tmp_path / "l", env=env, on_line=seen.append)
        == 0
    )
    assert seen == ["None yes"]
    assert runner.capture([sys.executable, "-c", script], tmp_path / "l", env=env) == (
        0,
        "None yes\n",
    )
