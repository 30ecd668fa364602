"""The kernel-only build for real (e2e): build, boot in QEMU, and the smoke verdict.

6.1 runs everywhere (Debian's linux-source-6.1 and gcc-arm-linux-gnueabi); 4.0 needs
FWGEN_TEST_LINUX40_SRC. Without the mykthread patch the same kernel must fail exactly the
feature's checks and nothing else: that is what proves the checks test the feature.
"""

from __future__ import annotations

import json
import re

import pytest

from fwgen import fingerprint, images, qemu, smoke, smoke_report
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.kbuild import KbuildRunner
from fwgen.toolchain import find as find_toolchain
from tests.rootfs import qemu_pids

pytestmark = pytest.mark.e2e

# The checks that only the kernel patches can satisfy. The usermodehelper demo module is a
# separate package and works on a kernel without them; the event source module needs them
# (<linux/myevent.h>, myevent_notify()), so the build without the feature leaves it out.
FEATURE_CHECKS = {
    "mykthread is running",
    "myevent_handler holds the handler set at boot",
    "first signal to mykthread: handler records TROUBLED_DS=1",
    "second signal to mykthread: handler records TROUBLED_DS=2",
    "event source module loads",
    "one event from a timer callback: handler records source=event TROUBLED_DS=4242",
    "burst of 100 events: 100 handler runs, ids in order, none lost, counters agree",
    "overflow: a burst of 200 loses 72 events, counted and reported, the rest in order",
    "unloading the event source while its 100 events are handled is safe",
    "unloading the event source with a burst pending cancels it",
    "third signal, after the events: handler records source=signal TROUBLED_DS=3",
}


def _smoke(images_dir, tmp_path):
    board = load_board("vexpress")
    report = smoke.run(
        board, qemu.find_images(board, images_dir), keep_going=True, log_dir=tmp_path / "smoke"
    )
    assert not qemu_pids(str(images_dir)), "QEMU left running"
    return report


def _failed(report) -> set[str]:
    return {r.name for r in report.results if r.status != smoke_report.PASSED}


@pytest.mark.parametrize("variant", ["6.1", "4.0"])
def test_patched_kernel_passes_every_check(kernel_builds, variant, tmp_path):
    images_dir = kernel_builds(variant)
    report = _smoke(images_dir, tmp_path)
    assert report.passed, "\n".join(smoke_report.format_result(r) for r in report.results)
    assert {r.name for r in report.results} >= FEATURE_CHECKS


@pytest.mark.parametrize("variant", ["6.1", "4.0"])
def test_unpatched_kernel_fails_exactly_the_feature_checks(kernel_builds, variant, tmp_path):
    report = _smoke(kernel_builds(variant, feature=False), tmp_path)
    assert _failed(report) == FEATURE_CHECKS, "\n".join(
        smoke_report.format_result(r) for r in report.results
    )


@pytest.mark.parametrize("variant", ["6.1", "4.0"])
def test_kbuild_with_nothing_changed_compiles_nothing(kernel_builds, variant):
    # Kbuild rebuilds an object whose recorded command differs from the new one; linux-4.0
    # records a '#' so that GNU make 4.3 reads back another command (every object, every
    # time) unless the series' kbuild fix is in. The kept tree's make, nothing changed:
    work = kernel_builds(variant).parent
    board = load_board("vexpress")
    runner = KbuildRunner(
        work / "src", work / "obj", board.arch, find_toolchain(None), 2, work / "nothing.log"
    )
    runner.make("zImage", "modules")
    compiled = [
        line
        for line in (work / "nothing.log").read_text().splitlines()
        if line.startswith(("  CC ", "  AS "))
    ]
    assert compiled == []


def test_images_layout_manifest_and_checksums(kernel_builds, linux61_src):
    images_dir = kernel_builds("6.1")
    assert sorted(p.name for p in images_dir.iterdir()) == [
        "SHA256SUMS",
        "manifest.json",
        "rootfs.cpio.gz",
        "vexpress-v2p-ca9.dtb",
        "zImage",
    ]
    assert images.verify(images_dir) == []
    manifest = json.loads((images_dir / "manifest.json").read_text())
    kernel = manifest["kernel"]
    assert kernel["variant"] == "6.1" and kernel["release"].startswith("6.1.")
    board = load_board("vexpress")
    assert list(kernel["series"]) == [
        p.name for p in sorted(board.kernel("6.1").patches_dir().glob("*.patch"))
    ]
    # built from a source tree: the manifest says which, without a host path
    source = kernel["source"]
    assert source["kind"] == "tree" and source["tree"] == linux61_src.name
    assert source["version"] == kernel["version"] and source["version"].startswith("6.1.")
    assert re.fullmatch(r"[0-9a-f]{64}", source["content_sha256"])
    assert str(linux61_src) not in json.dumps(manifest)
    assert manifest["toolchain"]["prefix"].endswith("-")
    assert manifest["build"] == "kernel-only"
    assert set(manifest["images"]) == {"rootfs.cpio.gz", "vexpress-v2p-ca9.dtb", "zImage"}
    assert manifest["manifest_version"] == 1
    assert images.load_manifest(images_dir).to_record() == manifest  # read whole, typed


def test_cli_rebuild_is_incremental_and_leaves_the_source_alone(
    kernel_builds, linux61_src, tmp_path, capsys
):
    images_dir = kernel_builds("6.1")
    pristine = fingerprint.tree_stat(linux61_src)
    output = images_dir.parent.parent
    rootfs = tmp_path / "rootfs.cpio.gz"
    # The earlier build's initramfs is a valid --rootfs too (a cpio): fwgen adds overlays and
    # modules on top, replacing its own earlier copies.
    rootfs.write_bytes((images_dir / "rootfs.cpio.gz").read_bytes())
    code = main(
        [
            "build",
            "vexpress",
            "--kernel-only",
            "--kernel",
            "6.1",
            "--kernel-src",
            str(linux61_src),
            "--rootfs",
            str(rootfs),
            "-o",
            str(output),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(images_dir / "manifest.json")
    assert "incremental: same source, series and toolchain" in err
    assert fingerprint.tree_stat(linux61_src) == pristine
    report = _smoke(images_dir, tmp_path)
    assert report.passed, "\n".join(smoke_report.format_result(r) for r in report.results)
