"""The CLI contract: exit codes, --version, boards output, running as `python -m fwgen`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from fwgen import __version__, log
from fwgen.cli import main


def test_boards_json_lists_vexpress_with_pins(capsys):
    assert main(["boards", "--json"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    assert board["name"] == "vexpress"
    assert board["default_kernel"] == "4.0"
    assert board["kernels"]["4.0"]["default"] is True
    assert board["kernels"]["6.1"]["version"] == "6.1.174"
    shas = {board["buildroot"]["sha256"]} | {k["sha256"] for k in board["kernels"].values()}
    assert len(shas) == 3


def test_python_dash_m_and_version(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fwgen", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"fwgen {__version__}"


def test_usage_error_exits_2(capsys):
    try:
        main(["boards", "--no-such-flag"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("argparse accepted an unknown flag")


def test_internal_error_exits_1_without_traceback(monkeypatch, capsys):
    import fwgen.commands.boards as boards

    def boom(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(boards, "run", boom)
    assert main(["boards"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err
    assert "Traceback" not in err
    assert main(["--debug", "boards"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130(monkeypatch, capsys):
    import fwgen.commands.boards as boards

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(boards, "run", interrupted)
    assert main(["boards"]) == 130


def test_log_messages_go_to_the_stderr_of_the_moment(monkeypatch):
    # A CLI run configures logging; a later caller (another test's capture) replaces stderr
    # and may close the old stream: messages follow the replacement.
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.configure()
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    log.log.info("after the swap")
    assert second.getvalue() == "after the swap\n"
