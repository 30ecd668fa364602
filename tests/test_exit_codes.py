"""The exit-code contract: every subcommand, given malformed arguments, exits 2 with one
message (and, for fwgen's own messages, a fix), never a traceback or an internal error; and
it says so before any download, build or boot.

MALFORMED is keyed by subcommand: a subcommand added to fwgen.cli.COMMANDS without cases here
fails `test_every_subcommand_has_malformed_cases`.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from fwgen.cli import COMMANDS, main
from tests.conftest import REPO
from tests.rootfs import fake_kernel_images

SEED = REPO / "tests" / "data" / "seed-mykthread.md"

# argv (run in a folder holding: afile (a file), adir/ (a folder), images/ (fake kernel-only
# images), rootfs/ and doc.md (a good patch)), and words the message must contain.
MALFORMED: dict[str, list[tuple[list[str], str]]] = {
    "boards": [
        (["boards", "--bogus"], "unrecognized arguments"),
        (["boards", "extra"], "unrecognized arguments"),
    ],
    "build": [
        (["build"], "no board given"),
        (["build", "nosuchboard"], "unknown board 'nosuchboard'"),
        (["build", "--board", "afile"], "afile: not valid TOML"),
        (["build", "--board", "nope.toml"], "nope.toml: no such file"),
        (["build", "vexpress", "--board", "afile"], "two boards given"),
        (["build", "vexpress", "--kernel", "9.9"], "no kernel variant '9.9'"),
        (["build", "vexpress", "-j", "-1"], "must be 0"),
        (["build", "vexpress", "-j", "x"], "is not a number"),
        (["build", "vexpress", "--prefetch", "-2"], "must be 0"),
        (["build", "vexpress", "--buildroot-src", "/nonexistent"], "--buildroot-src /nonexistent"),
        (["build", "vexpress", "-o", "afile", "--dry-run"], "-o afile: "),
        (["build", "vexpress", "--mirror", "ftp://example.org/"], "neither an http(s) URL"),
        (["build", "vexpress", "--rootfs", "rootfs"], "only apply with --kernel-only"),
        (["build", "vexpress", "--kernel-only"], "needs a root filesystem"),
        (["build", "vexpress", "--kernel-only", "--rootfs", "/nonexistent"], "--rootfs"),
        (["build", "vexpress", "--kernel-only", "--rootfs", "rootfs", "--dry-run"], "only apply"),
        (
            ["build", "vexpress", "--kernel-only", "--rootfs", "rootfs", "--kernel-src", "/nope"],
            "--kernel-src /nope: no such file",
        ),
        (["build", "vexpress", "--kernel-only", "--rootfs", "rootfs", "-o", "afile"], "-o afile"),
    ],
    "config": [
        (["config", "vexpress"], "required: --kernel-src"),
        (["config", "vexpress", "--kernel-src", "/nonexistent"], "no such file or directory"),
        (["config", "vexpress", "--kernel-src", "adir"], "not a kernel source tree"),
        (["config", "vexpress", "--kernel-src", "afile"], "neither a directory nor a tarball"),
        (["config", "vexpress", "--kernel-src", "adir", "-o", "adir"], "-o adir: is a directory"),
        (["config", "vexpress", "--kernel-src", "adir", "-o", "no/such/f"], "does not exist"),
        (["config", "vexpress", "--kernel", "9.9", "--kernel-src", "adir"], "no kernel variant"),
    ],
    "fetch": [
        (["fetch"], "no board given"),
        (["fetch", "vexpress", "--kernel", "9.9", "--offline"], "no kernel variant '9.9'"),
        (["fetch", "vexpress", "--mirror", "ftp://example.org/"], "neither an http(s) URL"),
    ],
    "mirror": [
        (["mirror", "vexpress"], "required: -o/--output"),
        (["mirror", "vexpress", "-o", "afile"], "-o afile"),
        (["mirror", "vexpress", "-o", "m", "--kernel", "9.9"], "no kernel variant '9.9'"),
        (["mirror", "vexpress", "-o", "m", "--buildroot-src", "/nope"], "--buildroot-src /nope"),
    ],
    "doctor": [
        (["doctor", "nosuchboard"], "unknown board 'nosuchboard'"),
        (["doctor", "--stage", "bogus"], "invalid choice: 'bogus'"),
        (["doctor", "flash"], "unknown board 'flash'"),
    ],
    "patch": [
        (["patch"], "required: ACTION"),
        (["patch", "check", "vexpress"], "required: --kernel-src"),
        (["patch", "check", "vexpress", "--kernel-src", "/nonexistent"], "no such file"),
        (["patch", "import", "/nonexistent"], "/nonexistent: no such file"),
        (["patch", "import", "doc.md", "-o", "afile"], "-o afile"),
        (["patch", "import", "doc.md", "--strip", "-1"], "--strip must be 0 or more"),
        (["patch", "import", "doc.md", "-p", "x"], "invalid int value"),
        (["patch", "import", "doc.md", "--kernel-src", "/nonexistent"], "no such file"),
        (["patch", "import", "afile"], "no patch found"),
        (["patch", "import", str(SEED)], "cut short, or miscounted"),
    ],
    "smoke": [
        (["smoke", "vexpress", "--images", "/nonexistent"], "no images directory"),
        (["smoke", "vexpress", "--images", "adir"], "zImage is missing"),
        (["smoke", "vexpress", "--images", "images", "--kernel", "9.9"], "no kernel variant"),
        *[
            (["smoke", "vexpress", "--images", "images", "--timeout-multiplier", v], "at most 100")
            for v in ("inf", "nan", "1e9", "0", "-1")
        ],
        (["smoke", "vexpress", "--images", "images", "--timeout-multiplier", "x"], "invalid float"),
        (["smoke", "vexpress", "--images", "images", "--junit", "adir"], "--junit adir"),
        (["smoke", "vexpress", "--images", "images", "--results", "afile"], "--results afile"),
    ],
    "run": [
        (["run", "vexpress", "--images", "/nonexistent"], "no images directory"),
        (["run", "vexpress", "--images", "afile"], "no images directory"),
        (["run", "--board", "adir"], "a folder without a board.toml"),
    ],
    "flash": [
        (["flash", "vexpress"], "required: --device"),
        (["flash", "vexpress", "--device", "x.img"], "no sdcard.img in build/vexpress-4.0"),
        (["flash", "vexpress", "--images", "/nonexistent", "--device", "x"], "--images"),
        (["flash", "vexpress", "--images", "images", "--device", "x.img"], "no sdcard.img"),
    ],
    "release": [
        (["release"], "give a board to release"),
        (["release", "--verify", "/nonexistent"], "/nonexistent does not exist"),
        (["release", "vexpress", "--verify", "adir"], "--verify takes a release"),
        (["release", "vexpress", "--images", "/nonexistent"], "no images directory"),
        (["release", "vexpress", "--images", "images", "--out", "afile"], "--out afile"),
        (["release", "vexpress", "--images", "images", "--version", "../x"], "--version '../x'"),
        (["release", "vexpress", "--images", "images"], "does not match its manifest.json"),
        (
            ["release", "vexpress", "--images", "images", "--spdx-schema", "/nope"],
            "--spdx-schema /nope: no such file",
        ),
    ],
}


def test_every_subcommand_has_malformed_cases():
    names = {importlib.import_module(m).NAME for m in COMMANDS}
    assert names == set(MALFORMED), "add malformed-argument cases for every subcommand"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("not a recipe = [\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "rootfs").mkdir()
    fake_kernel_images(tmp_path / "images")
    (tmp_path / "doc.md").write_text(
        "--- a/src/demo.c\n+++ b/src/demo.c\n@@ -1,2 +1,3 @@\n a\n+b\n c\n"
    )
    monkeypatch.chdir(tmp_path)
    # Nothing here may reach the network: a proxy that refuses every connection.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    return tmp_path


def _cases() -> list:
    return [
        pytest.param(command, argv, words, id=" ".join(argv))
        for command, cases in MALFORMED.items()
        for argv, words in cases
    ]


@pytest.mark.parametrize(("command", "argv", "words"), _cases())
def test_malformed_arguments_exit_2_with_one_message(workdir, capsys, command, argv, words):
    started = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    errors = re.findall(r"^fwgen(?: [a-z]+)*: error: ", err, re.M)
    assert len(errors) == 1, err
    assert words in err, err
    if "usage:" not in err:  # fwgen's own messages say how to fix it
        assert "\n  fix: " in err, err
    assert took < 20, f"{argv} took {took:.1f} s before refusing"


def test_buildroot_src_is_checked_before_any_download(workdir, capsys):
    """The issue's example: a missing --buildroot-src used to cost 14 s of download retries."""
    started = time.monotonic()
    assert main(["build", "vexpress", "--buildroot-src", "/nonexistent"]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "--buildroot-src /nonexistent: no such file or directory" in err
    assert "download" not in err
    assert not list((workdir / "build").glob("*")) if (workdir / "build").exists() else True


def test_a_real_read_only_place_is_a_user_error(tmp_path):
    """Outputs aimed at a read-only directory (a real read-only bind mount, in a private mount
    namespace), through real `python -m fwgen` processes: exit 2, the option named."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a read-only bind mount")
    ro = tmp_path / "ro"
    fake_kernel_images(ro / "images")
    (ro / "rootfs").mkdir()
    (ro / "doc.md").write_text("--- a/x\n+++ b/x\n@@ -1,2 +1,3 @@\n a\n+b\n c\n")
    fwgen = f"{sys.executable} -m fwgen"
    runs = {
        "build": f"{fwgen} build vexpress --kernel-only --rootfs {ro}/rootfs -o {ro}/build",
        "patch": f"{fwgen} patch import {ro}/doc.md -o {ro}/out",
        "release": f"{fwgen} release vexpress --images {ro}/images --out {ro}/dist",
        "smoke": f"{fwgen} smoke vexpress --images {ro}/images --results {ro}/r",
        "junit": f"{fwgen} smoke vexpress --images {ro}/images --junit {ro}/j.xml",
        "config": f"{fwgen} config vexpress --kernel-src {ro} -o {ro}/.config",
    }
    script = f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" || exit 99\n'
    for name, command in runs.items():
        script += f"echo '### {name}'; {command}; echo \"### rc $?\"\n"
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if run.returncode == 99:
        pytest.skip(f"no read-only bind mount here: {run.stderr.strip()}")
    output = run.stdout + run.stderr
    assert re.findall(r"^### rc (\d+)$", output, re.M) == ["2"] * len(runs), output
    assert "Traceback" not in output and "internal error" not in output, output
    for option in ("-o", "--out", "--results", "--junit"):
        assert f"{option} {ro}/" in output, output
    assert output.count("is read-only") >= len(runs) - 1, output
