"""fwgen.smoke end to end on a FAKE qemu-system-arm (tests/fake_serial_console.py on PATH).

The fake boots to a login prompt and hands over to the host's /bin/sh, so the whole path runs
for real (command line, process, console, checks, poweroff, reports) except the guest itself.
Real QEMU boots are in test_smoke_e2e.py.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fwgen import qemu, smoke, smoke_report
from fwgen.board import Board, load_board
from fwgen.board_smoke import Smoke, SmokeCheck, SmokeLogin, SmokePoweroff
from fwgen.cli import main
from tests.rootfs import fake_kernel_images

FAKE = Path(__file__).with_name("fake_serial_console.py")


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch) -> dict[str, str]:
    """A PATH whose qemu-system-arm is the fake console; set FAKE_CONSOLE_MODE to steer it."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "qemu-system-arm"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CONSOLE_MODE", "login")
    return dict(os.environ)


def check(name: str, **fields) -> tuple[str, SmokeCheck]:
    return name, SmokeCheck(**fields)


def with_checks(*checks: tuple[str, SmokeCheck], **smoke_fields) -> Board:
    base = load_board("vexpress")
    fields = {"login": SmokeLogin(timeout=60), "vars": {"word": "hello"}} | smoke_fields
    board = dataclasses.replace(base, smoke=Smoke(checks=dict(checks), **fields))
    object.__setattr__(board, "name", base.name)
    return board


PASSING = (
    check("variables", run="echo {word} {kernel_series}", expect=r"^hello {kernel_series}$"),
    check("exit code", run="f() { return 3; }; f", expect_exit=3),
    check(
        "poll until a background job is done",
        setup="rm -f {flag}; (sleep 1; echo done > {flag}) &",
        run="cat {flag}",
        expect="^done$",
        poll=0.2,
        timeout=60,
    ),
)


def _run(board: Board, tmp_path: Path, **kwargs) -> smoke_report.SmokeReport:
    images = qemu.find_images(board, fake_kernel_images(tmp_path / "images"))
    results: list[smoke_report.CheckResult] = []
    report = smoke.run(board, images, on_result=results.append, **kwargs)
    assert results == report.results
    return report


def _statuses(report: smoke_report.SmokeReport) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def test_every_check_passes_and_the_log_is_next_to_the_images(fake_qemu, tmp_path):
    flag = tmp_path / "flag"
    board = with_checks(*PASSING, vars={"word": "hello", "flag": str(flag)})
    report = _run(board, tmp_path)
    assert _statuses(report) == {
        "boot to login": "passed",
        "variables": "passed",
        "exit code": "passed",
        "poll until a background job is done": "passed",
        "clean poweroff": "passed",
    }, smoke_report.format_summary(report)
    assert report.passed
    assert report.console_log == tmp_path / "images-smoke" / "console.log"
    log = report.console_log.read_text()
    assert "Welcome to a FAKE console" in log and "reboot: Power down" in log
    assert "### fwgen: qemu-system-arm -M vexpress-a9" in log
    summary = smoke_report.format_summary(report)
    assert summary.startswith("smoke PASSED: 5 passed, 0 failed in ")
    assert str(report.console_log) in summary


def test_the_summary_says_where_the_time_went(fake_qemu, tmp_path):
    flag = tmp_path / "flag"
    board = with_checks(*PASSING, vars={"word": "hello", "flag": str(flag)})
    report = _run(board, tmp_path)
    phases = dict(report.phases)
    assert list(phases) == [
        "first console output",
        "boot to login prompt",
        "login",
        "checks",
        "power-off",
    ]
    assert phases["checks"] >= 1.0  # the polled check waits for a 1 s background job
    assert sum(phases.values()) <= report.duration
    summary = smoke_report.format_summary(report)
    assert "\ntime: first console output " in summary
    assert " s, checks " in summary and "slow" not in summary


def test_a_slow_boot_and_a_slow_check_are_shown(fake_qemu, tmp_path, monkeypatch):
    # Slow means more than half of the deadline: 4 s of 8, 3.5 s of 6 (leaving a loaded test
    # host seconds to spare before either deadline).
    monkeypatch.setenv("FAKE_CONSOLE_BOOT_DELAY", "4")
    board = with_checks(
        check("quick", run="true", timeout=30),
        check("slow", run="sleep 3.5", timeout=6),
        login=SmokeLogin(timeout=8),
    )
    report = _run(board, tmp_path)
    assert report.passed, smoke_report.format_summary(report)
    # The phase starts when fwgen reads the first console line, which a loaded host may do a
    # moment after the fake wrote it (a run of the suite here measured 3.9989 s of the 4 s delay).
    assert dict(report.phases)["boot to login prompt"] >= 3
    assert [r.name for r in report.results if r.slow] == ["boot to login", "slow"]
    lines = {r.name: smoke_report.format_result(r) for r in report.results}
    assert "(slow: " in lines["slow"] and " of its 6 s)" in lines["slow"]
    assert "slow" not in lines["quick"]
    summary = smoke_report.format_summary(report)
    assert "slow (more than 50% of the deadline): boot to login " in summary
    assert "; slow 3." in summary and "--timeout-multiplier" in summary


def test_a_failure_stops_the_run_unless_keep_going(fake_qemu, tmp_path):
    board = with_checks(
        check("wrong output", run="echo nope", expect="^yes$"),
        check("after", run="true"),
    )
    report = _run(board, tmp_path)
    assert _statuses(report) == {
        "boot to login": "passed",
        "wrong output": "failed",
        "after": "skipped",
        "clean poweroff": "skipped",
    }
    failed = report.results[1]
    assert failed.message == "output does not match /^yes$/" and failed.excerpt == "nope"
    assert "--keep-going" in report.results[2].message

    report = _run(board, tmp_path / "again", keep_going=True)
    assert _statuses(report) == {
        "boot to login": "passed",
        "wrong output": "failed",
        "after": "passed",
        "clean poweroff": "passed",
    }
    assert not report.passed


def test_a_hung_check_times_out_and_keep_going_recovers(fake_qemu, tmp_path):
    board = with_checks(
        check("hangs", run="sleep 600", timeout=2),
        check("still answers", run="echo {word}", expect="^hello$"),
    )
    report = _run(board, tmp_path, keep_going=True)
    assert _statuses(report)["hangs"] == "failed"
    assert "timed out after 2 s" in report.results[1].message
    assert _statuses(report)["still answers"] == "passed"
    assert _statuses(report)["clean poweroff"] == "passed"


def test_the_multiplier_scales_deadlines(fake_qemu, tmp_path):
    board = with_checks(check("hangs", run="sleep 600", timeout=1))
    report = _run(board, tmp_path, multiplier=2.5)
    assert "timed out after 2 s" in report.results[1].message  # 1 s x 2.5, shown rounded


def test_setup_failure_and_failed_poll(fake_qemu, tmp_path):
    board = with_checks(
        check("setup fails", setup="false", run="true"),
        check("never", run="echo no", expect="^yes$", poll=0.2, timeout=1),
    )
    report = _run(board, tmp_path, keep_going=True)
    assert report.results[1].message == "setup exited with 1"
    assert report.results[2].message == "output does not match /^yes$/ (polled for 1 s)"


def test_kernel_fault_ends_the_run_whatever_keep_going(fake_qemu, tmp_path):
    board = with_checks(check("faults", run="oops"), check("next", run="true"))
    report = _run(board, tmp_path, keep_going=True)
    assert _statuses(report) == {
        "boot to login": "passed",
        "faults": "failed",
        "next": "skipped",
        "clean poweroff": "skipped",
    }
    assert report.results[1].message.startswith("kernel oops")
    assert "Internal error: Oops" in report.results[1].excerpt


def test_boot_without_login_prompt(fake_qemu, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CONSOLE_MODE", "nologin")
    board = with_checks(check("x", run="true"), login=SmokeLogin(timeout=2))
    report = _run(board, tmp_path)
    assert _statuses(report) == {
        "boot to login": "failed",
        "x": "skipped",
        "clean poweroff": "skipped",
    }
    assert "waiting for the login prompt" in report.results[0].message
    assert "did not boot to a shell" in report.results[1].message


def test_qemu_failing_to_start_shows_its_stderr(fake_qemu, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CONSOLE_MODE", "badarg")
    report = _run(with_checks(), tmp_path)
    message = report.results[0].message
    assert message.startswith("QEMU exited (status 1) while")
    assert "QEMU said: qemu-system-arm: -bogus: invalid option" in message
    assert (tmp_path / "images-smoke" / "qemu-stderr.log").read_text().startswith("qemu-system")


def test_poweroff_that_never_ends(fake_qemu, tmp_path):
    board = with_checks(poweroff=SmokePoweroff(run="echo pretending", timeout=2))
    report = _run(board, tmp_path)
    assert report.results[-1].status == "failed"
    assert "reboot: Power down" in report.results[-1].message


def test_junit_xml(fake_qemu, tmp_path):
    board = with_checks(
        check("ok", run="true"),
        check("bad", run="echo out; false"),
        check("later", run="true"),
    )
    report = _run(board, tmp_path)
    path = tmp_path / "reports" / "smoke.xml"
    smoke_report.write_junit(report, path)
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "2")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["boot to login", "ok", "bad", "later", "clean poweroff"]
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message") == "exit code 1, expected 0"
    assert failure.text == "out"
    assert cases["later"].find("skipped") is not None
    assert cases["ok"].find("failure") is None and float(cases["ok"].get("time")) >= 0
    assert str(report.console_log) in suite.find("system-out").text


def test_cli_smoke_exit_codes_summary_and_junit(fake_qemu, tmp_path, capsys):
    images = fake_kernel_images(tmp_path / "images")
    junit = tmp_path / "junit.xml"
    # The real vexpress checks on a host shell: the first one (kernel release) fails.
    code = main(["smoke", "vexpress", "--images", str(images), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 2
    assert "smoke vexpress, kernel 4.0, initramfs root (rootfs.cpio.gz)" in out
    assert "  PASS  boot to login" in out
    assert "  FAIL  kernel release matches the variant" in out
    assert "smoke FAILED: 1 passed, 1 failed, " in out
    assert f"console log: {tmp_path}/images-smoke/console.log" in out
    assert junit.is_file()


def test_cli_default_images_dir_and_missing_qemu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["smoke", "vexpress", "--kernel", "6.1"]) == 2
    err = capsys.readouterr().err
    assert "no images directory at build/vexpress-6.1/images" in err
    fake_kernel_images(tmp_path / "build/vexpress-4.0/images")
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["smoke", "vexpress"]) == 2
    assert "apt-get install qemu-system-arm" in capsys.readouterr().err


def test_cli_rejects_a_bad_multiplier(tmp_path, capsys, monkeypatch):
    images = fake_kernel_images(tmp_path / "images")
    assert main(["smoke", "vexpress", "--images", str(images), "--timeout-multiplier", "0"]) == 2
    monkeypatch.setenv("FWGEN_TIMEOUT_MULTIPLIER", "fast")
    assert main(["smoke", "vexpress", "--images", str(images)]) == 2
    assert "FWGEN_TIMEOUT_MULTIPLIER='fast'" in capsys.readouterr().err


def test_cli_run_passes_qemu_its_terminal_and_status(fake_qemu, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_CONSOLE_MODE", "badarg")
    images = fake_kernel_images(tmp_path / "images", root="sd")
    assert main(["run", "vexpress", "--images", str(images)]) == 2
    captured = capsys.readouterr()
    assert "QEMU exited with status 1 (its own message is above)" in captured.err
    out = captured.out
    assert "fwgen: qemu-system-arm -M vexpress-a9 -m 256M" in out
    assert "if=sd,format=raw" in out and "-no-reboot" not in out
    assert "temporary copy" in out


def test_a_silent_console_fails_fast_with_the_qemu_command_line(
    fake_qemu, tmp_path, capsys, monkeypatch
):
    """Nothing on the console: the verdict comes after first_output (20 s x multiplier),
    not after the 300 s login timeout, and QEMU's audio noise stays out of log and verdict."""
    monkeypatch.setenv("FAKE_CONSOLE_MODE", "silent")
    board = with_checks(check("x", run="true"), login=SmokeLogin(timeout=300))
    images = fake_kernel_images(tmp_path / "images")
    started = time.monotonic()
    report = smoke.run(board, qemu.find_images(board, images), multiplier=0.1)
    took = time.monotonic() - started
    assert took < 30, took  # 2 s of silence, plus starting and stopping
    assert _statuses(report) == {
        "boot to login": "failed",
        "x": "skipped",
        "clean poweroff": "skipped",
    }
    message = report.results[0].message
    assert message.startswith("no console output in 2 s: the guest printed nothing")
    assert "; QEMU: qemu-system-arm -M vexpress-a9 -m 256M" in message
    assert f"-kernel {images / 'zImage'}" in message
    assert "the console stayed silent" in report.results[1].message
    log = report.console_log.read_text()
    stderr = (tmp_path / "images-smoke" / "qemu-stderr.log").read_text()
    assert "ALSA lib" in stderr and "audio-audio-pa" in stderr  # kept in QEMU's own file
    for noise in ("ALSA", "alsa:", "audio-audio-pa", "lm4549"):
        assert noise not in log and noise not in message
    # through the CLI: exit 2, and the same verdict
    code = main(["smoke", "vexpress", "--images", str(images), "--timeout-multiplier", "0.1"])
    out = capsys.readouterr().out
    assert code == 2 and "no console output in 2 s" in out and "qemu-system-arm -M" in out


def test_the_first_output_window_is_in_the_recipe(tmp_path):
    from fwgen.board import load_board_file
    from tests.conftest import anywhere_recipe

    text = anywhere_recipe().replace(
        'login = { prompt = "login:", user = "root", timeout = 300 }',
        'login = { prompt = "login:", user = "root", timeout = 300, first_output = 45 }',
    )
    recipe = tmp_path / "b" / "board.toml"
    recipe.parent.mkdir()
    recipe.write_text(text)
    assert load_board_file(recipe).smoke.login.first_output == 45
    assert load_board("vexpress").smoke.login.first_output == 20
