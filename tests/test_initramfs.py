"""fwgen.initramfs: reproducible newc archives, root-owned, layered like Buildroot overlays."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fwgen import initramfs
from fwgen.errors import FwgenError


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin/busybox").write_bytes(b"\x7fELF fake busybox")
    (root / "bin/busybox").chmod(0o755)
    (root / "bin/sh").symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("base\n")
    (root / "etc/shadow").write_text("root::1:0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o600)
    (root / "sbin").mkdir()
    (root / "sbin/init").symlink_to("../bin/busybox")
    (root / "empty").mkdir()
    return root


def _cpio_listing(archive: Path) -> list[str]:
    """`cpio -itv` of the archive: the real tool reads what we wrote."""
    if not shutil.which("cpio"):
        pytest.skip("cpio is not installed")
    raw = gzip.decompress(archive.read_bytes())
    out = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=raw, capture_output=True, check=True
    ).stdout
    return out.decode().splitlines()


def test_pack_is_reproducible_and_root_owned(tmp_path):
    base = _tree(tmp_path / "base")
    one = initramfs.pack(tmp_path / "one.cpio.gz", [base])
    os.utime(base / "etc/hostname", (1, 1))
    (base / "etc/hostname").chmod(0o644)
    two = initramfs.pack(tmp_path / "two.cpio.gz", [base])
    assert one.read_bytes() == two.read_bytes()

    listing = _cpio_listing(one)
    assert listing, "cpio found no entries"
    for line in listing:
        fields = line.split()
        assert fields[2:4] == ["root", "root"] or fields[2:4] == ["0", "0"], line
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in listing]
    assert names.index("bin") < names.index("bin/busybox")
    entries = initramfs.list_entries(one)
    assert stat.S_IMODE(entries["bin/busybox"][0]) == 0o755
    assert stat.S_IMODE(entries["etc/shadow"][0]) == 0o600
    assert entries["bin/sh"][2] == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert stat.S_ISDIR(entries["empty"][0])
    # No /init in the tree and a /bin/sh: the devtmpfs-mounting script is added.
    assert entries["init"][2] == initramfs.INIT_SCRIPT


def test_later_layers_win_and_files_are_added(tmp_path):
    base = _tree(tmp_path / "base")
    overlay = tmp_path / "overlay"
    (overlay / "etc/init.d").mkdir(parents=True)
    (overlay / "etc/hostname").write_text("overlay\n")
    script = overlay / "etc/init.d/S30x"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    module = tmp_path / "demo.ko"
    module.write_bytes(b"module")
    out = initramfs.pack(
        tmp_path / "r.cpio.gz",
        [base, overlay],
        {"/lib/modules/6.1.0/extra/demo.ko": module},
        add_init=False,
    )
    entries = initramfs.list_entries(out)
    assert entries["etc/hostname"][2] == b"overlay\n"
    assert stat.S_IMODE(entries["etc/init.d/S30x"][0]) == 0o755
    assert entries["lib/modules/6.1.0/extra/demo.ko"][2] == b"module"
    assert stat.S_ISDIR(entries["lib/modules/6.1.0"][0])
    assert "init" not in entries


def test_overlay_goes_through_a_directory_symlink(tmp_path):
    """A merged-/usr base (/lib -> usr/lib) keeps its symlink when an overlay brings /lib/..."""
    base = tmp_path / "base"
    (base / "usr/lib").mkdir(parents=True)
    (base / "lib").symlink_to("usr/lib")
    overlay = tmp_path / "overlay"
    (overlay / "lib/firmware").mkdir(parents=True)
    (overlay / "lib/firmware/fw.bin").write_bytes(b"fw")
    entries = initramfs.list_entries(initramfs.pack(tmp_path / "r.cpio.gz", [base, overlay]))
    assert stat.S_ISLNK(entries["lib"][0])
    assert entries["usr/lib/firmware/fw.bin"][2] == b"fw"
    assert "lib/firmware/fw.bin" not in entries


def test_a_cpio_base_is_read_back(tmp_path):
    """A rootfs given as a cpio (the output of a previous pack, or of cpio -H newc)."""
    base = _tree(tmp_path / "base")
    first = initramfs.pack(tmp_path / "first.cpio.gz", [base])
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc/motd").write_text("hi\n")
    second = initramfs.pack(tmp_path / "second.cpio.gz", [first, overlay])
    entries = initramfs.list_entries(second)
    assert entries["etc/motd"][2] == b"hi\n"
    assert entries["bin/busybox"][2] == b"\x7fELF fake busybox"
    assert entries["init"][2] == initramfs.INIT_SCRIPT


def test_cpio_made_by_the_cpio_tool_with_hard_links(tmp_path):
    if not shutil.which("cpio"):
        pytest.skip("cpio is not installed")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("same\n")
    os.link(src / "a", src / "b")
    names = b"a\nb\n"
    raw = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        cwd=src,
        input=names,
        capture_output=True,
        check=True,
    ).stdout
    archive = tmp_path / "tool.cpio"
    archive.write_bytes(raw)
    entries = initramfs.list_entries(archive)
    assert entries["a"][2] == entries["b"][2] == b"same\n"


def test_bad_layers_are_clear_errors(tmp_path):
    with pytest.raises(FwgenError, match="does not exist"):
        initramfs.pack(tmp_path / "x.cpio.gz", [tmp_path / "missing"])
    junk = tmp_path / "junk.cpio"
    junk.write_bytes(b"not a cpio at all" * 10)
    with pytest.raises(FwgenError, match="not a newc cpio"):
        initramfs.pack(tmp_path / "x.cpio.gz", [junk])
    assert not (tmp_path / "x.cpio.gz").exists()
    assert not list(tmp_path.glob(".x.cpio.gz.*")), "temporary file left behind"
