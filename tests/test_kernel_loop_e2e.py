"""The kernel developer's loop on a real 6.1 kernel-only build (e2e): one line of the feature
patch changed, `fwgen build --kernel-only` brings the kept tree to the new series, Kbuild
recompiles only what depends on the changed file, and the new kernel shows the change in QEMU;
the same build again is "up to date" without Kconfig or make.

The first build here is all ccache hits (the session's e2e build of 6.1 has filled the cache);
the counts below are of object files whose mtime changed between the two builds (6 of 1666 when
this was written: init/main.o, init/version-timestamp.o, vmlinux.o, the two kallsyms objects and
the compressed kernel's piggy.o).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil

import pytest

from fwgen import qemu, smoke, smoke_report
from fwgen.board import load_board
from fwgen.board_smoke import Smoke
from fwgen.kernel import build_kernel_only
from tests.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.e2e

# The edited line: the kernel's message when events were lost, which the overflow check reads.
MESSAGE = "mykthread: %lu events lost: the queue (%d) was full"
EDITED = "mykthread: %lu events lost (edited): the queue (%d) was full"
LOAD = "event source module loads"
OVERFLOW = "overflow: a burst of 200 loses 72 events, counted and reported, the rest in order"


def _objects(obj):
    return {p: p.stat().st_mtime_ns for p in obj.rglob("*.o")}


def _overflow_only(board, expect_edited: bool):
    """The board with only the checks that show the edited message."""
    checks = {name: board.smoke.checks[name] for name in (LOAD, OVERFLOW)}
    if expect_edited:
        expect = checks[OVERFLOW].expect
        assert "events lost: the queue" in expect
        checks[OVERFLOW] = dataclasses.replace(
            checks[OVERFLOW],
            expect=expect.replace("events lost: the queue", r"events lost \(edited\): the queue"),
        )
    smoke_spec = Smoke(board.smoke.login, board.smoke.poweroff, board.smoke.vars, checks)
    return dataclasses.replace(board, smoke=smoke_spec)


def test_a_one_line_patch_edit_rebuilds_only_what_depends_on_it(
    kernel_builds, linux61_src, tmp_path, caplog
):
    kernel_builds("6.1")  # fills the session's ccache with this kernel's objects
    # fwgen's logger does not propagate; an earlier test's CLI run may have left a handler on
    # a stream that is closed by now: only caplog's, for this test.
    logger = logging.getLogger("fwgen")
    saved = logger.handlers[:]
    logger.handlers[:] = [caplog.handler]
    caplog.set_level(logging.INFO, logger="fwgen")
    board = load_board("vexpress")
    series = tmp_path / "series"
    shutil.copytree(board.kernel("6.1").patches_dir(), series)
    variant = dataclasses.replace(board.kernel("6.1"), patches=str(series))
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")

    def build():
        caplog.clear()
        return build_kernel_only(
            board,
            "6.1",
            rootfs=rootfs,
            output=tmp_path / "out",
            kernel_src=str(linux61_src),
            variant=variant,
        )

    try:
        images = build()
        obj = images.parent / "obj"
        before = _objects(obj)
        config_stamp = (obj / ".config").stat().st_mtime_ns
        (patch,) = [p for p in series.glob("*.patch") if MESSAGE in p.read_text()]
        patch.write_text(patch.read_text().replace(MESSAGE, EDITED))

        images = build()
        assert "new series: the patch series changed (" + patch.name in caplog.text
        assert re.search(
            r"files that differ from the last build's tree: init/main.c$", caplog.text, re.M
        )
        # Nothing Kconfig reads changed: the .config is kept, not made again.
        assert "kernel .config: kept (the series changed no Kconfig file" in caplog.text
        assert (obj / ".config").stat().st_mtime_ns == config_stamp
        after = _objects(obj)
        rebuilt = sorted(str(p.relative_to(obj)) for p in after if before.get(p) != after[p])
        print(f"objects: {len(before)}; rebuilt after the edit: {len(rebuilt)}: {rebuilt}")
        assert "init/main.o" in rebuilt
        assert len(before) > 1000 and len(rebuilt) <= 12, rebuilt

        report = smoke.run(
            _overflow_only(board, expect_edited=True),
            qemu.find_images(board, images),
            log_dir=tmp_path / "smoke",
        )
        assert report.passed, "\n".join(smoke_report.format_result(r) for r in report.results)

        untouched = [images / "SHA256SUMS", obj / ".config", obj / "vmlinux"]
        stamps = [p.stat().st_mtime_ns for p in untouched]
        build()
        assert "up to date: no input changed since the last build" in caplog.text
        assert [p.stat().st_mtime_ns for p in untouched] == stamps  # no Kconfig, no make
        last = (images.parent / "build.log").read_text().splitlines()[-1]
        assert last.startswith("fwgen: up to date: no input changed")
    finally:
        logger.handlers[:] = saved
