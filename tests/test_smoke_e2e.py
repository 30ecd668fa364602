"""fwgen smoke on REAL kernels in REAL QEMU (e2e): the checks pass, and bad input is clear.

The kernels are built by fwgen's own kernel-only build (the `kernel_builds` fixture): 6.1 from
Debian's linux-source-6.1 always, 4.0 when FWGEN_TEST_LINUX40_SRC names a linux-4.0 tree.
Their images hold an initramfs of the busybox fixture (tests/rootfs.py) + overlays/ + modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwgen import initramfs, qemu, smoke, smoke_report
from fwgen.board import Board, Qemu, load_board
from fwgen.board_smoke import Smoke, SmokeCheck, SmokeLogin
from fwgen.cli import main
from tests import rootfs
from tests.conftest import restore_default_signals
from tests.rootfs import find_kernel_files, make_images, qemu_pids

pytestmark = pytest.mark.e2e

busybox_rootfs = rootfs.busybox_rootfs  # the session fixture

ROOTFS_NAMES = qemu.SD_IMAGES + qemu.INITRAMFS_IMAGES


@pytest.fixture(scope="module", params=["6.1", "4.0"])
def images_dir(request, kernel_builds) -> Path:
    return kernel_builds(request.param)


@pytest.fixture(scope="module")
def kernel_dir(kernel_builds, tmp_path_factory) -> Path:
    """zImage, dtb and the out-of-tree modules of the real 6.1 build: for the tests that pack
    their own root filesystem around a kernel."""
    images = kernel_builds("6.1")
    dest = tmp_path_factory.mktemp("kernel-6.1")
    for name in ("zImage", "vexpress-v2p-ca9.dtb"):
        shutil.copyfile(images / name, dest / name)
    built = rootfs.find_modules(images.parent / "modules")
    assert [ko.name for ko in built] == rootfs.module_files()
    for ko in built:
        shutil.copyfile(ko, dest / ko.name)
    return dest


def _report(board: Board, images: Path, **kwargs) -> smoke_report.SmokeReport:
    report = smoke.run(board, qemu.find_images(board, images), **kwargs)
    assert not qemu_pids(str(images)), "QEMU left running"
    assert report.console_log.is_file() and report.console_log.stat().st_size > 0
    return report


def _explain(report: smoke_report.SmokeReport) -> str:
    lines = [smoke_report.format_result(r) for r in report.results]
    return "\n".join([*lines, smoke_report.format_summary(report)])


def _with(board: Board, **changes) -> Board:
    new = dataclasses.replace(board, **changes)
    object.__setattr__(new, "name", board.name)
    return new


def check(name: str, **fields) -> tuple[str, SmokeCheck]:
    return name, SmokeCheck(**fields)


def _kernel_only_images(dest: Path, kernel_dir: Path, layers: list[Path]) -> Path:
    """zImage and dtb from `kernel_dir`, the initramfs packed from `layers` as they are."""
    files = find_kernel_files(kernel_dir)
    dest.mkdir(parents=True)
    shutil.copyfile(files["zImage"], dest / "zImage")
    shutil.copyfile(files["dtb"], dest / "vexpress-v2p-ca9.dtb")
    initramfs.pack(dest / "rootfs.cpio.gz", layers, add_init=False)
    return dest


# --- the checks pass ---------------------------------------------------------------------------


def test_every_vexpress_check_passes(images_dir, tmp_path):
    board = load_board("vexpress")
    report = _report(board, images_dir, log_dir=tmp_path / "logs")
    assert report.passed, _explain(report)
    assert [r.name for r in report.results][1:-1] == list(board.smoke.checks)
    smoke_report.write_junit(report, tmp_path / "junit.xml")
    log = report.console_log.read_text()
    assert "TROUBLED_DS=2" in log and "reboot: Power down" in log
    assert "mykthread: 72 events lost: the queue (128) was full" in log


def test_cli_smoke_exits_0(kernel_dir, busybox_rootfs, tmp_path, capsys):
    images = make_images(tmp_path / "images", kernel_dir, busybox_rootfs)
    code = main(["smoke", "vexpress", "--images", str(images), "--junit", str(tmp_path / "j.xml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"smoke PASSED: {len(load_board('vexpress').smoke.checks) + 2} passed, 0 failed" in out
    assert f"console log: {tmp_path}/images-smoke/console.log" in out


def test_sd_card_root(kernel_dir, busybox_rootfs, tmp_path):
    """An ext2 root on the emulated SD card, booted from a padded copy; the image is untouched."""
    if not shutil.which("mke2fs"):
        pytest.skip("mke2fs (e2fsprogs) is not installed")
    files = find_kernel_files(kernel_dir)
    tree = tmp_path / "tree"
    shutil.copytree(busybox_rootfs, tree, symlinks=True)
    for overlay in rootfs.overlay_dirs():
        shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
    built = rootfs.find_modules(kernel_dir)
    release = rootfs.module_release(built[0])
    (tree / f"lib/modules/{release}/extra").mkdir(parents=True)
    for ko in built:
        shutil.copyfile(ko, tree / f"lib/modules/{release}/extra/{ko.name}")
    with contextlib.suppress(PermissionError):
        os.mknod(tree / "dev/console", 0o600 | 0o020000, os.makedev(5, 1))
    images = tmp_path / "images"
    images.mkdir()
    shutil.copyfile(files["zImage"], images / "zImage")
    shutil.copyfile(files["dtb"], images / "vexpress-v2p-ca9.dtb")
    ext2 = images / "rootfs.ext2"
    subprocess.run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext2",
            "-d",
            str(tree),
            "-E",
            "root_owner=0:0",
            str(ext2),
            "20M",
        ],
        check=True,
        capture_output=True,
    )
    rootfs.write_manifest(images, release)
    before = ext2.read_bytes()
    report = _report(load_board("vexpress"), images)
    assert report.root == "sd"
    assert report.passed, _explain(report)
    assert "-drive file=" in report.console_log.read_text()
    assert ext2.read_bytes() == before, "the SD image artifact was modified"


# --- bad input --------------------------------------------------------------------------------


def test_kernel_panic_stops_at_once_with_the_excerpt(kernel_dir, tmp_path):
    """An initramfs whose /init cannot run: the kernel panics ("No working init found")."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "init").write_text("this is not a program\n")
    (tree / "init").chmod(0o755)
    images = _kernel_only_images(tmp_path / "images", kernel_dir, [tree])
    board = load_board("vexpress")
    report = _report(board, images)
    boot = report.results[0]
    assert boot.status == "failed" and boot.message.startswith("kernel panic"), _explain(report)
    assert "No working init found" in boot.excerpt
    assert all(r.status == "skipped" for r in report.results[1:])
    assert "Kernel panic - not syncing" in report.console_log.read_text()


def test_rootfs_without_login_is_a_timeout_at_the_login_step(kernel_dir, tmp_path):
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copyfile(rootfs.find_busybox(), tree / "bin/busybox")
    (tree / "bin/busybox").chmod(0o755)
    (tree / "bin/sh").symlink_to("busybox")
    (tree / "bin/sleep").symlink_to("busybox")
    (tree / "init").write_text("#!/bin/sh\necho 'no getty here'\nwhile :; do sleep 1000; done\n")
    (tree / "init").chmod(0o755)
    images = _kernel_only_images(tmp_path / "images", kernel_dir, [tree])
    base = load_board("vexpress")
    board = _with(base, smoke=dataclasses.replace(base.smoke, login=SmokeLogin(timeout=60)))
    report = _report(board, images)
    boot = report.results[0]
    assert boot.status == "failed", _explain(report)
    assert boot.message == "timed out after 60 s waiting for the login prompt"
    assert "no getty here" in boot.excerpt
    assert report.results[1].message == "not run: the system did not boot to a shell"


def test_hanging_check_times_out_and_qemu_is_gone(kernel_dir, busybox_rootfs, tmp_path):
    images = make_images(tmp_path / "images", kernel_dir, busybox_rootfs)
    hang = check("hangs", run="sleep 100000", timeout=10)
    after = check("after", run="true")
    board = _with(load_board("vexpress"), smoke=Smoke(checks=dict([hang, after])))
    report = _report(board, images)
    statuses = [(r.name, r.status) for r in report.results]
    assert statuses == [
        ("boot to login", "passed"),
        ("hangs", "failed"),
        ("after", "skipped"),
        ("clean poweroff", "skipped"),
    ], _explain(report)
    assert report.results[1].message.startswith("timed out after 10 s")
    assert "step 'hangs'" in report.console_log.read_text()


def test_real_qemu_rejecting_a_corrupt_device_tree(kernel_dir, busybox_rootfs, tmp_path):
    images = make_images(tmp_path / "images", kernel_dir, busybox_rootfs)
    dtb = images / "vexpress-v2p-ca9.dtb"
    dtb.write_bytes(dtb.read_bytes()[:4] + bytes(60))  # the magic, and nothing valid after it
    report = _report(load_board("vexpress"), images)
    message = report.results[0].message
    assert message.startswith("QEMU exited (status 1)"), _explain(report)
    assert "device tree" in message


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -signal.SIGKILL)],
)
def test_no_qemu_left_when_fwgen_is_interrupted_or_killed(
    kernel_dir, busybox_rootfs, tmp_path, signum, exit_code
):
    """Ctrl-C, SIGTERM, even SIGKILL of fwgen mid-run: QEMU does not outlive it."""
    images = make_images(tmp_path / "images", kernel_dir, busybox_rootfs)
    fwgen = subprocess.Popen(
        [sys.executable, "-m", "fwgen", "smoke", "vexpress", "--images", str(images)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # As from a terminal: a test run started in the background (SIGINT ignored) or under
        # nohup (SIGHUP ignored) must not change what fwgen gets.
        preexec_fn=restore_default_signals,
    )
    try:
        for _ in range(600):
            if qemu_pids(str(images)) or fwgen.poll() is not None:
                break
            time.sleep(0.1)
        assert qemu_pids(str(images)), "QEMU never started"
        fwgen.send_signal(signum)
        assert fwgen.wait(timeout=120) == exit_code
        # After SIGKILL nothing in fwgen runs: QEMU ends on the hang-up of its terminal.
        for _ in range(300):
            if not qemu_pids(str(images)):
                break
            time.sleep(0.1)
        assert not qemu_pids(str(images)), "QEMU outlived fwgen"
    finally:
        fwgen.kill()
        fwgen.wait()
        for pid in qemu_pids(str(images)):
            os.kill(pid, signal.SIGKILL)


def test_qemu_refusing_its_arguments_shows_its_stderr(kernel_dir, busybox_rootfs, tmp_path):
    images = make_images(tmp_path / "images", kernel_dir, busybox_rootfs)
    base = load_board("vexpress")
    bogus = Qemu(**{**dataclasses.asdict(base.qemu), "args": (*base.qemu.args, "-bogus-option")})
    report = _report(_with(base, qemu=bogus), images)
    message = report.results[0].message
    assert "QEMU exited (status 1)" in message and "-bogus-option: invalid option" in message
