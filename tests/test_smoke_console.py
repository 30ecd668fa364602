"""fwgen.console against a FAKE serial console (tests/fake_serial_console.py) with a real shell.

The fake prints boot messages and a login prompt, then becomes the host's /bin/sh with the
terminal echoing what is typed, as a serial console does: the marker protocol, exit codes,
fault detection and timeouts all run against a real shell on a real pseudo-terminal.
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest

from fwgen import console as console_module
from fwgen.console import (
    Console,
    ConsoleClosed,
    ConsoleError,
    ConsoleTimeout,
    Deadline,
    KernelFault,
)

FAKE = Path(__file__).with_name("fake_serial_console.py")


@pytest.fixture
def spawn_fake(monkeypatch):
    children: list[pexpect.spawn] = []

    def spawn(mode: str = "login") -> tuple[pexpect.spawn, io.StringIO]:
        monkeypatch.setenv("FAKE_CONSOLE_MODE", mode)
        child = pexpect.spawn(
            sys.executable, [str(FAKE)], encoding="utf-8", echo=False, timeout=None
        )
        log = io.StringIO()
        child.logfile_read = log
        children.append(child)
        return child, log

    yield spawn
    for child in children:
        child.close(force=True)


@pytest.fixture
def shell(spawn_fake) -> Console:
    child, _ = spawn_fake()
    console = Console(child)
    console.login(Deadline(60))
    return console


def test_output_and_exit_codes_through_markers(shell):
    result = shell.run("echo hello; echo 'two words'; false", Deadline(30))
    assert result.output == "hello\ntwo words"
    assert result.exit_code == 1
    assert shell.run("true", Deadline(30)).exit_code == 0
    assert shell.run("exit_7() { return 7; }; exit_7", Deadline(30)).exit_code == 7


def test_commands_with_quotes_comments_newlines_and_no_final_newline(shell):
    result = shell.run("printf '%s' \"it's\" # a comment", Deadline(30))
    assert result == result.__class__("it's", 0)
    result = shell.run("for i in 1 2; do\n  echo line$i\ndone", Deadline(30))
    assert result.output == "line1\nline2"
    # The echo of the typed line carries the marker in two quoted halves: never a match.
    result = shell.run("echo FWB; echo FWE", Deadline(30))
    assert result.output == "FWB\nFWE"


def test_commands_cannot_read_the_console(shell):
    result = shell.run("cat", Deadline(30))
    assert result.output == "" and result.exit_code == 0


def test_grepping_for_fault_words_is_not_a_fault(shell):
    result = shell.run("echo 'Oops|WARNING:|BUG:|Kernel panic' | grep -c BUG", Deadline(30))
    assert result.output == "1"


def test_an_oops_stops_at_once_with_the_trace(shell):
    # Had the watcher missed it, the command would end normally and nothing would be raised.
    with pytest.raises(KernelFault) as e:
        shell.run("oops; sleep 300", Deadline(600))
    assert e.value.kind == "kernel oops"
    assert "Internal error: Oops: 817 [#1] SMP ARM" in e.value.excerpt
    assert "PC is at fake_function" in e.value.excerpt


def test_a_hung_command_times_out_and_ctrl_c_recovers_the_shell(shell):
    with pytest.raises(ConsoleTimeout) as e:
        shell.run("sleep 300", Deadline(2))
    assert "sleep 300" in e.value.message
    assert shell.interrupt(Deadline(60))
    assert shell.run("echo back", Deadline(30)).output == "back"


def test_login_with_a_password(spawn_fake):
    child, _ = spawn_fake("password")
    console = Console(child)
    console.login(Deadline(60), password="secret")
    assert console.run("echo in", Deadline(30)).output == "in"


def test_wrong_password_is_refused(spawn_fake):
    child, _ = spawn_fake("password")
    with pytest.raises(ConsoleError, match="refused"):
        Console(child).login(Deadline(60), password="wrong")


def test_no_login_prompt_is_a_timeout_naming_the_step(spawn_fake):
    child, _ = spawn_fake("nologin")
    with pytest.raises(ConsoleTimeout) as e:
        Console(child).login(Deadline(2))
    assert "the login prompt" in e.value.message
    assert "Welcome to a FAKE console" in e.value.excerpt


def test_panic_during_boot_is_reported_with_its_excerpt(spawn_fake):
    child, log = spawn_fake("panic")
    with pytest.raises(KernelFault) as e:
        Console(child).login(Deadline(600))
    assert e.value.kind == "kernel panic"
    assert "No working init found" in e.value.excerpt
    assert "---[ end Kernel panic" in e.value.excerpt
    assert "Kernel panic" in log.getvalue()


def test_the_other_end_closing_is_reported(spawn_fake):
    child, _ = spawn_fake("badarg")
    with pytest.raises(ConsoleClosed, match="QEMU exited"):
        Console(child).login(Deadline(60))


def test_poweroff_closes_the_console(shell):
    shell.send_line("poweroff")
    shell.expect(["reboot: Power down"], Deadline(30), "the power-down line")
    shell.wait_closed(Deadline(30), "exit")
    shell.child.wait()
    assert shell.child.exitstatus == 0


def test_deadline_is_shared():
    deadline = Deadline(0.2)
    assert 0 < deadline.remaining() <= 0.2
    time.sleep(0.25)
    assert deadline.remaining() == 0


def test_busybox_through_qemu_line_ends_and_cursor_queries(spawn_fake):
    """CR CR LF line ends and ESC [ 6 n after each prompt, as busybox ash shows through QEMU."""
    child, log = spawn_fake("qemu")
    console = Console(child)
    console.login(Deadline(60))
    result = console.run("echo one; echo two", Deadline(30))
    assert result.output == "one\ntwo" and result.exit_code == 0
    assert "\r\r\n" in log.getvalue() and "\x1b[6n" in log.getvalue()


@pytest.mark.parametrize(
    ("stream", "matches"),
    [
        ("Enter 'help'\r\r\n\r\r\n# ", True),
        ("Enter 'help'\r\r\n\r\r\n# \x1b[6n", True),
        ("~ $ ", True),
        ("# \x1b[6nrandom: crng init done", False),
        ("root\r\n", False),
    ],
)
def test_shell_prompt_after_login_is_recognised(stream, matches):
    assert bool(re.search(console_module._SHELL_PROMPT, stream)) is matches


def test_clean_removes_carriage_returns_and_escapes():
    assert console_module.clean("a\r\r\nb\x1b[6n\x1b[0;32mc\x1b[0m\r\n") == "a\nbc\n"
