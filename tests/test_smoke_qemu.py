"""fwgen.qemu: image checks, QEMU's command line, the padded SD copy, process cleanup."""

from __future__ import annotations

import dataclasses
import os
import signal
import struct
import sys
import time
from pathlib import Path

import pytest

from fwgen import qemu, smoke
from fwgen.board import Qemu, load_board
from fwgen.errors import FwgenError
from tests.rootfs import fake_kernel_images

BOARD = load_board("vexpress")


def test_initramfs_command_line(tmp_path):
    images = qemu.find_images(BOARD, fake_kernel_images(tmp_path / "images"))
    assert images.root == "initramfs" and images.variant == "4.0"
    argv = qemu.command_line(BOARD, images, None, smoke=True)
    d = tmp_path / "images"
    assert argv == [
        "qemu-system-arm", "-M", "vexpress-a9", "-m", "256M", "-smp", "1", "-nographic",
        "-audiodev", "none,id=snd0", "-global", "pl041.audiodev=snd0",
        "-kernel", str(d / "zImage"), "-dtb", str(d / "vexpress-v2p-ca9.dtb"),
        "-initrd", str(d / "rootfs.cpio.gz"),
        "-append", "console=ttyAMA0,115200",
        "-no-reboot",
    ]  # fmt: skip
    assert "-no-reboot" not in qemu.command_line(BOARD, images, None, smoke=False)


def test_sd_command_line_uses_the_copy_and_escapes_commas(tmp_path):
    images = qemu.find_images(BOARD, fake_kernel_images(tmp_path / "images", root="sd"))
    assert images.root == "sd" and images.rootfs.name == "sdcard.img"
    copy = tmp_path / "a,b" / "sdcard.img"
    argv = qemu.command_line(BOARD, images, copy, smoke=True)
    i = argv.index("-drive")
    assert argv[i + 1] == f"file={tmp_path}/a,,b/sdcard.img,if=sd,format=raw"
    assert argv[argv.index("-append") + 1] == BOARD.qemu.sd_append
    with pytest.raises(ValueError):
        qemu.command_line(BOARD, images, None, smoke=True)


def test_serial_is_added_when_the_recipe_has_no_console_option(tmp_path):
    images = qemu.find_images(BOARD, fake_kernel_images(tmp_path / "images"))
    plain = dataclasses.replace(BOARD, qemu=Qemu(machine="vexpress-a9", memory="256M"))
    object.__setattr__(plain, "name", "vexpress")
    argv = qemu.command_line(plain, images, None, smoke=True)
    assert argv[5:9] == ["-display", "none", "-serial", "mon:stdio"]


def test_sd_card_is_preferred_then_ext2_then_initramfs(tmp_path):
    d = fake_kernel_images(tmp_path / "images", root="sd")
    (d / "rootfs.ext2").write_bytes((d / "sdcard.img").read_bytes())
    fake_kernel_images(tmp_path / "tiny", root="initramfs")
    (d / "rootfs.cpio.gz").write_bytes((tmp_path / "tiny/rootfs.cpio.gz").read_bytes())
    assert qemu.find_images(BOARD, d).rootfs.name == "sdcard.img"
    (d / "sdcard.img").unlink()
    assert qemu.find_images(BOARD, d).rootfs.name == "rootfs.ext2"
    (d / "rootfs.ext2").unlink()
    assert qemu.find_images(BOARD, d).root == "initramfs"


def test_padded_copy_is_a_power_of_two_and_leaves_the_artifact_alone(tmp_path):
    source = tmp_path / "rootfs.ext2"
    content = os.urandom(3_000_001)
    source.write_bytes(content)
    before = source.stat()
    (tmp_path / "out").mkdir()
    copy = qemu.padded_copy(source, tmp_path / "out")
    assert copy.stat().st_size == 4 * 1024 * 1024
    assert copy.read_bytes()[: len(content)] == content
    assert copy.read_bytes()[len(content) :] == bytes(4 * 1024 * 1024 - len(content))
    assert source.read_bytes() == content
    assert source.stat().st_mtime_ns == before.st_mtime_ns
    # Sparse: the padding takes no blocks (st_blocks is in 512-byte units).
    assert copy.stat().st_blocks * 512 < 3_500_000
    exact = tmp_path / "exact.img"
    exact.write_bytes(bytes(1 << 20))
    (tmp_path / "out2").mkdir()
    assert qemu.padded_copy(exact, tmp_path / "out2").stat().st_size == 1 << 20


def test_prepared_root_removes_its_copy(tmp_path):
    images = qemu.find_images(BOARD, fake_kernel_images(tmp_path / "images", root="sd"))
    with qemu.prepared_root(images) as copy:
        assert copy is not None and copy.stat().st_size == 8 * 1024 * 1024
    assert not copy.exists() and not copy.parent.exists()
    assert (tmp_path / "images/sdcard.img").stat().st_size == 5_000_000


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda d: None, "no images directory"),
        (lambda d: fake_kernel_images(d) and (d / "zImage").unlink(), "zImage is missing"),
        (
            lambda d: fake_kernel_images(d) and (d / "vexpress-v2p-ca9.dtb").rename(d / "x.dtb"),
            "vexpress-v2p-ca9.dtb is missing (found: x.dtb)",
        ),
        (
            lambda d: fake_kernel_images(d) and (d / "vexpress-v2p-ca9.dtb").write_bytes(b"x"),
            "not a device tree blob",
        ),
        (lambda d: fake_kernel_images(d, root="none"), "no root filesystem"),
        (
            lambda d: fake_kernel_images(d) and (d / "rootfs.cpio.gz").write_bytes(b"junk"),
            "neither a gzip-compressed nor a plain newc cpio",
        ),
        (
            lambda d: (
                fake_kernel_images(d, root="sd") and (d / "sdcard.img").write_bytes(b"0" * 99)
            ),
            "neither an ext2/3/4 filesystem nor a partitioned image",
        ),
        (lambda d: fake_kernel_images(d, manifest={"board": "rpi"}), "images for board 'rpi'"),
        (
            lambda d: fake_kernel_images(
                d, manifest={"board": "vexpress", "kernel": {"variant": "x"}}
            ),
            "no kernel variant 'x'",
        ),
    ],
)
def test_missing_or_mismatched_images(tmp_path, setup, words):
    d = tmp_path / "images"
    setup(d)
    with pytest.raises(FwgenError) as e:
        qemu.find_images(BOARD, d)
    assert words in str(e.value)


def test_manifest_variant_wins_and_conflicts_are_refused(tmp_path):
    manifest = {"board": "vexpress", "kernel": {"variant": "6.1", "version": "6.1.192"}}
    d = fake_kernel_images(tmp_path / "images", manifest=manifest)
    assert qemu.find_images(BOARD, d).variant == "6.1"
    assert qemu.find_images(BOARD, d, "6.1").manifest.kernel.version == "6.1.192"
    with pytest.raises(FwgenError, match="holds a kernel 6.1 build, but --kernel 4.0"):
        qemu.find_images(BOARD, d, "4.0")


@pytest.mark.parametrize(
    ("offset", "magic", "words"),
    [
        (0, b"\x7fELF", "ELF file"),
        (0x38, b"ARM\x64", "arm64 Image"),
        (0x202, b"HdrS", "x86 bzImage"),
        (0x100, b"", "no magic 0x016f2818"),
    ],
)
def test_wrong_architecture_kernels(tmp_path, offset, magic, words):
    d = fake_kernel_images(tmp_path / "images")
    kernel = bytearray(4096)
    kernel[offset : offset + len(magic)] = magic
    (d / "zImage").write_bytes(bytes(kernel))
    with pytest.raises(FwgenError) as e:
        qemu.find_images(BOARD, d)
    assert words in str(e.value) and "ARCH=arm" in str(e.value)


def test_qemu_missing_names_the_package(tmp_path):
    with pytest.raises(FwgenError) as e:
        qemu.qemu_binary(BOARD, {"PATH": str(tmp_path)})
    assert "qemu-system-arm is not installed" in str(e.value)
    assert "apt-get install qemu-system-arm" in str(e.value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (not yet reaped by its parent).
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_process_group_is_killed_on_an_exception(tmp_path):
    """QemuProcess on a stand-in program that starts a grandchild: both are gone after."""
    script = (
        "import subprocess, time; subprocess.Popen(['sleep', '300']); "
        "print('up', flush=True); time.sleep(300)"
    )
    process = qemu.QemuProcess(
        [sys.executable, "-c", script],
        console_log=(tmp_path / "log").open("w"),
        stderr_path=tmp_path / "stderr",
    )
    with pytest.raises(RuntimeError), process as child:
        child.expect("up", timeout=30)
        pgid = os.getpgid(child.pid)
        members = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _pgid(int(p.name)) == pgid
        ]
        assert len(members) == 2
        raise RuntimeError("a failing step")
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in members)
    assert process.child is None
    process.stop()  # idempotent


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_sigterm_becomes_system_exit():
    with pytest.raises(SystemExit) as e, qemu.terminate_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert e.value.code == 143


def test_real_qemu_refusing_an_argument_shows_its_stderr(tmp_path):
    """Real qemu-system-arm with a bogus option exits at once; its own message is kept."""
    if not _has_qemu():
        pytest.skip("qemu-system-arm is not installed")
    process = qemu.QemuProcess(
        ["qemu-system-arm", "-M", "vexpress-a9", "-bogus-option"],
        console_log=(tmp_path / "log").open("w"),
        stderr_path=tmp_path / "stderr",
    )
    with process as child:
        child.expect(qemu.pexpect.EOF, timeout=60)
        assert process.wait() == 1
    assert "-bogus-option: invalid option" in process.stderr_text()


def _has_qemu() -> bool:
    try:
        qemu.qemu_binary(BOARD)
    except FwgenError:
        return False
    return True


def test_zimage_magic_is_read_little_endian(tmp_path):
    path = tmp_path / "zImage"
    path.write_bytes(bytes(0x24) + struct.pack("<I", qemu.ZIMAGE_MAGIC) + bytes(8))
    qemu.check_zimage(path)
    path.write_bytes(bytes(0x24) + struct.pack(">I", qemu.ZIMAGE_MAGIC) + bytes(8))
    with pytest.raises(FwgenError):
        qemu.check_zimage(path)


def test_real_qemu_with_a_silent_guest_fails_fast_without_audio_noise(tmp_path):
    """REAL qemu-system-arm on a kernel that prints nothing (the fake zImage runs garbage).
    The recipe here has no -audiodev, so QEMU probes the host's audio and complains on
    stderr: that stays in qemu-stderr.log, out of the console log and the verdict."""
    if not _has_qemu():
        pytest.skip("qemu-system-arm is not installed")
    plain = dataclasses.replace(
        BOARD, qemu=dataclasses.replace(BOARD.qemu, args=("-smp", "1", "-nographic"))
    )
    object.__setattr__(plain, "name", "vexpress")
    images = qemu.find_images(plain, fake_kernel_images(tmp_path / "images"))
    started = time.monotonic()
    report = smoke.run(plain, images, multiplier=0.25)
    assert time.monotonic() - started < 60
    first = report.results[0]
    assert first.status == "failed" and first.message.startswith("no console output in 5 s")
    assert "QEMU: qemu-system-arm -M vexpress-a9 -m 256M -smp 1 -nographic" in first.message
    stderr = (tmp_path / "images-smoke" / "qemu-stderr.log").read_text()
    log = report.console_log.read_text()
    noise = [line for line in stderr.splitlines() if qemu.host_noise(line)]
    for line in noise:
        assert line not in log and line not in first.message
    assert "audio" not in log.lower() and "alsa" not in first.message.lower()
    # with the recipe's own arguments QEMU has nothing to complain about
    report = smoke.run(BOARD, qemu.find_images(BOARD, images.directory), multiplier=0.25)
    assert report.results[0].message.startswith("no console output in 5 s")
    quiet = (tmp_path / "images-smoke" / "qemu-stderr.log").read_text()
    assert not [line for line in quiet.splitlines() if qemu.host_noise(line)], quiet


def test_host_noise_is_told_from_qemu_errors():
    for line in (
        "qemu: module audio-audio-pa not found, do you want to install qemu-system-gui package?",
        "ALSA lib confmisc.c:855:(parse_card) cannot find card '0'",
        "alsa: Could not initialize DAC",
        "audio: Failed to create voice `lm4549.out'",
        "audio: Device lm4549: audiodev default parameter is deprecated, please specify audiodev=x",
    ):
        assert qemu.host_noise(line), line
    for line in (
        "qemu-system-arm: -bogus-option: invalid option",
        "qemu-system-arm: load_device_tree: Unable to copy device tree into memory",
        "qemu-system-arm: could not load kernel 'zImage'",
    ):
        assert not qemu.host_noise(line), line
