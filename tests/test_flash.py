"""fwgen flash: mapped-only writes, verification, and every refusal (with a faked sysfs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fwgen import flash, flash_target, fsutil, images
from fwgen.cli import main
from fwgen.errors import FwgenError
from tests import manifests

MiB = 1 << 20


def make_card(directory: Path, size: int = 64 * MiB, chunks: tuple[int, ...] = (1, 10, 40)) -> int:
    """A sparse sdcard.img with 1 MiB of random data at each offset (MiB), its .bmap, and the
    directory's manifest.json and SHA256SUMS (as a build leaves them).

    Returns the mapped byte count.
    """
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / flash.IMAGE
    with image.open("wb") as f:
        f.truncate(size)
        for offset in chunks:
            f.seek(offset * MiB)
            f.write(os.urandom(MiB))
    bmap = directory / flash.BMAP
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True)
    images.finalize(directory, manifests.sample(build="buildroot"))
    return len(chunks) * MiB


def refinalize(directory: Path) -> None:
    """manifest.json and SHA256SUMS again, for the files as they are now."""
    images.finalize(directory, manifests.sample(build="buildroot"))


needs_bmaptool = pytest.mark.skipif(shutil.which("bmaptool") is None, reason="needs bmaptool")


class FakeView(flash_target.SystemView):
    """Block devices are the files under `dev`; facts come from a fake sysfs and mounts."""

    def is_block(self, path: Path) -> bool:
        return path.is_relative_to(self.dev)


def fake_system(
    tmp: Path,
    *,
    mounts: str = "sysfs /sys sysfs rw 0 0\n/dev/sda2 / ext4 rw 0 0\n",
    removable: str = "1",
    sectors: int = 1 << 20,
) -> FakeView:
    """sda (the system disk: sda1, sda2) and sdx (a 512 MiB card with sdx1), plus dm-0 on sda3."""
    sysfs, dev = tmp / "sys", tmp / "dev"
    dev.mkdir()
    for disk, parts, rem in (("sda", ("sda1", "sda2", "sda3"), "0"), ("sdx", ("sdx1",), removable)):
        root = sysfs / "devices" / disk
        (root / "device").mkdir(parents=True)
        (root / "size").write_text(f"{sectors}\n")
        (root / "removable").write_text(rem + "\n")
        (root / "device" / "model").write_text(f"Model {disk}   \n")
        (root / "holders").mkdir()
        (sysfs / "class" / "block").mkdir(parents=True, exist_ok=True)
        (sysfs / "class" / "block" / disk).symlink_to(root)
        (dev / disk).write_bytes(b"")
        for part in parts:
            (root / part).mkdir()
            (root / part / "partition").write_text("1\n")
            (root / part / "size").write_text("2048\n")
            (root / part / "holders").mkdir()
            (sysfs / "class" / "block" / part).symlink_to(root / part)
    (sysfs / "class" / "block" / "dm-0" / "slaves").mkdir(parents=True)
    (sysfs / "class" / "block" / "dm-0" / "slaves" / "sda3").mkdir()
    (tmp / "mounts").write_text(mounts)
    return FakeView(sysfs=sysfs, mounts=tmp / "mounts", dev=dev)


# --- writing -----------------------------------------------------------------------------------


@needs_bmaptool
def test_bmap_flash_to_a_file_writes_only_mapped_blocks(tmp_path):
    mapped = make_card(tmp_path / "images")
    target = tmp_path / "card.img"
    result = flash.flash(
        tmp_path / "images" / flash.IMAGE, target, bmap=tmp_path / "images" / flash.BMAP
    )
    assert result.written == mapped and result.verified and result.method == "bmaptool"
    assert target.read_bytes() == (tmp_path / "images" / flash.IMAGE).read_bytes()
    # the sparse target holds about the mapped data, not the 64 MiB of the image
    assert target.stat().st_blocks * 512 <= mapped + MiB
    assert "verified" in result.summary() and str(mapped) in result.summary()


@needs_bmaptool
@pytest.mark.parametrize("with_bmap", [True, False])
def test_a_corrupted_image_is_refused_before_anything_is_written(tmp_path, capsys, with_bmap):
    make_card(tmp_path / "images")
    if not with_bmap:
        (tmp_path / "images" / flash.BMAP).unlink()
        refinalize(tmp_path / "images")
    with (tmp_path / "images" / flash.IMAGE).open("r+b") as f:
        f.seek(10 * MiB + 5)
        f.write(b"\x00\x01\x02")
    target = tmp_path / "card.img"
    old = tmp_path / "old.img"
    old.write_bytes(b"keep me")
    for device in (target, old):
        argv = ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device"]
        assert main([*argv, str(device), "--yes"]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'images' / flash.IMAGE} does not match SHA256SUMS" in err
        assert "nothing was written" in err
    assert not target.exists()
    assert old.read_bytes() == b"keep me"


@needs_bmaptool
def test_bmaptool_refuses_an_image_that_does_not_match_its_bmap(tmp_path):
    """Without the directory's records (the library call), bmaptool's own check still holds."""
    make_card(tmp_path / "images")
    with (tmp_path / "images" / flash.IMAGE).open("r+b") as f:
        f.seek(10 * MiB + 5)
        f.write(b"\x00\x01\x02")
    target = tmp_path / "card.img"
    with pytest.raises(FwgenError, match="checksum mismatch"):
        flash.flash(
            tmp_path / "images" / flash.IMAGE, target, bmap=tmp_path / "images" / flash.BMAP
        )
    assert not target.exists()


@needs_bmaptool
def test_a_changed_bmap_is_refused_before_writing(tmp_path, capsys):
    make_card(tmp_path / "images")
    bmap = tmp_path / "images" / flash.BMAP
    bmap.write_text(bmap.read_text().replace("<!--", "<!-- edited"))
    target = tmp_path / "card.img"
    argv = ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device", str(target)]
    assert main(argv) == 2
    assert f"{bmap} does not match" in capsys.readouterr().err
    assert not target.exists()


def test_without_a_bmap_a_full_copy_is_read_back(tmp_path, capsys):
    make_card(tmp_path / "images", size=8 * MiB, chunks=(1,))
    (tmp_path / "images" / flash.BMAP).unlink()
    refinalize(tmp_path / "images")
    target = tmp_path / "copy.img"
    argv = ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device", str(target)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{8 * MiB} bytes" in out
    assert (
        f"with full copy; verified: read back all {8 * MiB} bytes, sha256 equal to the "
        "image's (SHA256SUMS and manifest.json) (sdcard.img matched SHA256SUMS and "
        "manifest.json before writing)" in out
    )
    assert target.read_bytes() == (tmp_path / "images" / flash.IMAGE).read_bytes()


@needs_bmaptool
def test_with_a_bmap_the_mapped_ranges_are_read_back(tmp_path, capsys, monkeypatch):
    mapped = make_card(tmp_path / "images", size=16 * MiB, chunks=(1, 8))
    target = tmp_path / "copy.img"
    argv = ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device", str(target)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"with bmaptool; verified: read back the {mapped} mapped bytes, each range equal to "
        "sdcard.img.bmap's sha256 (sdcard.img matched SHA256SUMS and manifest.json before "
        "writing)" in out
    )
    # A target that does not keep what was written (a fake card): the read-back says so.
    real_pread = os.pread
    monkeypatch.setattr(flash.os, "pread", lambda fd, n, at: b"\0" * len(real_pread(fd, n, at)))
    target.unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"read-back of {target} differs from sdcard.img.bmap in blocks" in err
    assert not target.exists()  # a new file that failed is removed


def test_no_verify_is_reported(tmp_path):
    make_card(tmp_path / "images", size=4 * MiB, chunks=(1,))
    result = flash.flash(tmp_path / "images" / flash.IMAGE, tmp_path / "t.img", verify=False)
    assert not result.verified
    assert "NOT verified (--no-verify): nothing was read back" in result.summary()


def test_a_read_back_mismatch_is_an_error(tmp_path, monkeypatch):
    make_card(tmp_path / "images", size=4 * MiB, chunks=(1,))
    real_pread = os.pread
    monkeypatch.setattr(flash.os, "pread", lambda fd, n, at: b"\xff" * len(real_pread(fd, n, at)))
    with pytest.raises(FwgenError, match="read-back of .* differs"):
        flash.flash(tmp_path / "images" / flash.IMAGE, tmp_path / "t.img")
    assert not (tmp_path / "t.img").exists()


def test_an_existing_file_needs_confirmation(tmp_path):
    make_card(tmp_path / "images", size=4 * MiB, chunks=(1,))
    target = tmp_path / "old.img"
    target.write_bytes(b"keep me")
    image = tmp_path / "images" / flash.IMAGE
    with pytest.raises(FwgenError, match="without confirmation.*\n.*--yes"):
        flash.flash(image, target, interactive=False)
    with pytest.raises(FwgenError, match="not confirmed"):
        flash.flash(image, target, interactive=True, ask=lambda prompt: "y")
    assert target.read_bytes() == b"keep me"
    flash.flash(image, target, interactive=True, ask=lambda prompt: "yes")
    assert target.stat().st_size == 4 * MiB


def test_no_sdcard_image_says_how_to_get_one(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    argv = ["flash", "vexpress", "--images", str(tmp_path / "images"), "--device", "x.img"]
    assert main(argv) == 2
    assert "only a Buildroot build" in capsys.readouterr().err


# --- refusals ----------------------------------------------------------------------------------


def card(tmp_path: Path, size: int = 4 * MiB) -> Path:
    make_card(tmp_path / "images", size=size, chunks=(1,))
    return tmp_path / "images" / flash.IMAGE


def refuse(image: Path, device: Path, view: flash_target.SystemView, match: str, **kw) -> str:
    with pytest.raises(FwgenError, match=match) as info:
        flash.flash(image, device, view=view, yes=True, **kw)
    return str(info.value)


def test_a_missing_device_is_refused_and_nothing_is_created(tmp_path):
    view = fake_system(tmp_path)
    refuse(card(tmp_path), view.dev / "sdq", view, "does not exist; fwgen never creates")
    assert not (view.dev / "sdq").exists()
    # the same for the real /dev
    with pytest.raises(FwgenError, match="never creates files under /dev"):
        flash.flash(card(tmp_path), Path("/dev/fwgen-no-such-card"), yes=True)
    assert not Path("/dev/fwgen-no-such-card").exists()


def test_a_file_in_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(FwgenError, match="does not exist"):
        flash.flash(card(tmp_path), tmp_path / "nope" / "x.img", yes=True)


def test_by_id_links_are_resolved_and_both_names_shown(tmp_path):
    view = fake_system(tmp_path)
    (view.dev / "disk" / "by-id").mkdir(parents=True)
    link = view.dev / "disk" / "by-id" / "usb-Card_Reader-0:0"
    link.symlink_to("../../sdx")
    target = flash_target.inspect(link, view)
    assert target.path == view.dev / "sdx" and target.block
    text = target.describe()
    assert f"{link} -> {view.dev / 'sdx'}" in text
    assert "Model sdx" in text and "512.0 MiB" in text and "sdx1" in text and "removable" in text


def test_a_mounted_partition_is_refused(tmp_path):
    view = fake_system(
        tmp_path, mounts="/dev/sda2 / ext4 rw 0 0\n/dev/sdx1 /media/my\\040card vfat rw 0 0\n"
    )
    message = refuse(card(tmp_path), view.dev / "sdx", view, "refusing to write")
    assert "/dev/sdx1 is mounted on /media/my card" in message and "umount" in message


def test_a_mounted_whole_disk_is_refused(tmp_path):
    view = fake_system(tmp_path, mounts="/dev/sda2 / ext4 rw 0 0\n/dev/sdx /mnt ext4 rw 0 0\n")
    refuse(card(tmp_path), view.dev / "sdx", view, "/dev/sdx is mounted on /mnt")


def test_the_system_disk_is_refused_even_with_force(tmp_path):
    view = fake_system(tmp_path)
    message = refuse(card(tmp_path), view.dev / "sda", view, "running system", force=True)
    assert "/dev/sda2 is mounted on /" in message


def test_the_system_disk_behind_device_mapper_is_refused(tmp_path):
    view = fake_system(tmp_path, mounts="/dev/dm-0 / ext4 rw 0 0\n")
    (view.sysfs / "class" / "block" / "sda" / "sda3" / "holders" / "dm-0").mkdir()
    message = refuse(card(tmp_path), view.dev / "sda", view, "running system", force=True)
    assert "sda3 is in use by dm-0" in message


def test_a_non_removable_disk_needs_force(tmp_path):
    view = fake_system(tmp_path, removable="0")
    image = card(tmp_path)
    refuse(image, view.dev / "sdx", view, "not a removable disk.*--force")
    target = flash_target.inspect(view.dev / "sdx", view)
    assert flash_target.refusals(target, image.stat().st_size, view, force=True) == []


def test_a_device_smaller_than_the_image_is_refused(tmp_path):
    view = fake_system(tmp_path, sectors=4096)  # 2 MiB
    refuse(card(tmp_path), view.dev / "sdx", view, "holds 2.0 MiB but the image is 4.0 MiB")


def test_a_good_card_passes_every_check(tmp_path):
    view = fake_system(tmp_path)
    image = card(tmp_path)
    target = flash_target.inspect(view.dev / "sdx", view)
    assert flash_target.refusals(target, image.stat().st_size, view, force=False) == []
    assert flash_target.system_disks(view) == {"sda"}


def test_a_block_device_needs_confirmation_without_a_terminal(tmp_path):
    view = fake_system(tmp_path)
    with pytest.raises(FwgenError, match="no terminal.*\n.*--yes"):
        flash.flash(card(tmp_path), view.dev / "sdx", view=view, interactive=False)


def test_a_regular_file_under_dev_is_refused(tmp_path):
    view = flash_target.SystemView(
        sysfs=tmp_path / "sys", mounts=tmp_path / "m", dev=tmp_path / "dev"
    )
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "sdz").write_bytes(b"")
    (tmp_path / "m").write_text("")
    refuse(card(tmp_path), tmp_path / "dev" / "sdz", view, "is not a block device")


# --- a real loop device ------------------------------------------------------------------------


@needs_bmaptool
def test_flash_to_a_real_loop_device(tmp_path):
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    backing = tmp_path / "backing.img"
    backing.write_bytes(b"\xa5" * (64 * MiB))
    setup = subprocess.run(
        ["losetup", "-f", "--show", str(backing)], capture_output=True, text=True
    )
    if setup.returncode != 0:
        pytest.skip(f"cannot attach a loop device here: {setup.stderr.strip()}")
    loop = Path(setup.stdout.strip())
    try:
        mapped = make_card(tmp_path / "images", size=32 * MiB, chunks=(1, 10))
        view = flash_target.SystemView()
        target = flash_target.inspect(loop, view)
        assert target.block and target.size == 64 * MiB
        # loop devices say removable=0: refused unless --force
        with pytest.raises(FwgenError, match="not a removable disk"):
            flash.flash(tmp_path / "images" / flash.IMAGE, loop, yes=True, view=view)
        result = flash.flash(
            tmp_path / "images" / flash.IMAGE,
            loop,
            bmap=tmp_path / "images" / flash.BMAP,
            yes=True,
            force=True,
        )
        assert result.written == mapped
        subprocess.run(["sync"], check=True)
        data = backing.read_bytes()
        image = (tmp_path / "images" / flash.IMAGE).read_bytes()
        for offset in (1, 10):  # mapped ranges hold the image's data
            assert (
                data[offset * MiB : (offset + 1) * MiB] == image[offset * MiB : (offset + 1) * MiB]
            )
        # unmapped ranges kept their pattern: only mapped blocks were written
        assert data[5 * MiB : 6 * MiB] == b"\xa5" * MiB
        assert data[32 * MiB :] == b"\xa5" * (32 * MiB)  # beyond the image: untouched
    finally:
        subprocess.run(["losetup", "-d", str(loop)], check=False)


# --- the flash's own inputs are never a target -------------------------------------------------


def _flash_cli(images_dir: Path, device: Path | str, *extra: str) -> int:
    argv = ["flash", "vexpress", "--images", str(images_dir), "--device", str(device), "--yes"]
    return main([*argv, *extra])


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: fsutil.sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


@needs_bmaptool
@pytest.mark.parametrize(
    "how", ["the image", "the bmap", "the manifest", "a new file", "a symlink", "a hard link"]
)
def test_a_target_that_is_an_input_is_refused(tmp_path, capsys, how):
    images_dir = tmp_path / "images"
    make_card(images_dir, size=8 * MiB, chunks=(1,))
    before = _digests(images_dir)
    device = {
        "the image": images_dir / flash.IMAGE,
        "the bmap": images_dir / flash.BMAP,
        "the manifest": images_dir / "manifest.json",
        "a new file": images_dir / "card.img",
        "a symlink": tmp_path / "link.img",
        "a hard link": tmp_path / "hard.img",
    }[how]
    if how == "a symlink":
        device.symlink_to(images_dir / flash.IMAGE)
    if how == "a hard link":
        os.link(images_dir / flash.IMAGE, device)
    assert _flash_cli(images_dir, device) == 2
    err = capsys.readouterr().err
    assert f"refusing to write {os.path.realpath(device)}" in err
    assert "the flash's own input" in err or "inside the images directory" in err
    assert "Traceback" not in err
    assert _digests(images_dir) == before  # nothing was touched
    assert not (images_dir / "card.img").exists()


@needs_bmaptool
def test_a_symlinked_view_of_the_images_directory_is_refused(tmp_path, capsys):
    images_dir = tmp_path / "images"
    make_card(images_dir, size=8 * MiB, chunks=(1,))
    (tmp_path / "view").symlink_to(images_dir)
    before = _digests(images_dir)
    assert _flash_cli(images_dir, tmp_path / "view" / "new.img") == 2
    assert "inside the images directory" in capsys.readouterr().err
    assert _digests(images_dir) == before


@needs_bmaptool
def test_a_bind_mount_of_the_image_is_refused(tmp_path):
    """A real bind mount, in a private mount namespace (unshare -m), so nothing leaks out."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a private bind mount")
    images_dir = tmp_path / "images"
    make_card(images_dir, size=8 * MiB, chunks=(1,))
    before = _digests(images_dir)
    bound_file = tmp_path / "bound.img"
    bound_file.write_bytes(b"")
    bound_dir = tmp_path / "bound-dir"
    bound_dir.mkdir()
    fwgen = f"{sys.executable} -m fwgen flash vexpress --images {images_dir} --yes --device"
    script = (
        f"mount --bind {images_dir / flash.IMAGE} {bound_file} && "
        f"mount --bind {images_dir} {bound_dir} && "
        f"{{ {fwgen} {bound_file}; echo file=$?; {fwgen} {bound_dir / 'new.img'}; echo dir=$?; }}"
    )
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if "mount:" in run.stderr and "file=" not in run.stdout:
        pytest.skip(f"bind mounts are not possible here: {run.stderr.strip()}")
    assert "file=2" in run.stdout and "dir=2" in run.stdout, run.stdout + run.stderr
    assert "the flash's own input" in run.stderr and "inside the images directory" in run.stderr
    assert _digests(images_dir) == before


def test_a_partition_is_refused_naming_its_disk(tmp_path):
    view = fake_system(tmp_path)
    (view.dev / "sdx1").write_bytes(b"")
    message = refuse(card(tmp_path), view.dev / "sdx1", view, "refusing to write")
    assert f"{view.dev / 'sdx1'} is a partition of {view.dev / 'sdx'}" in message
    assert f"use --device {view.dev / 'sdx'}" in message


def test_partitions_are_found_through_sysfs_not_by_name(tmp_path):
    """A loop partition (loop0p1) is refused; a whole disk whose name ends in a digit
    (mmcblk0, nvme0n1) is not a partition."""
    view = fake_system(tmp_path)
    block = view.sysfs / "class" / "block"
    for disk, part in (("loop0", "loop0p1"), ("mmcblk0", "mmcblk0p2"), ("nvme0n1", None)):
        root = view.sysfs / "devices" / "virtual" / disk
        root.mkdir(parents=True)
        (root / "size").write_text("1048576\n")
        (root / "removable").write_text("1\n")
        (block / disk).symlink_to(root)
        (view.dev / disk).write_bytes(b"")
        if part:
            (root / part).mkdir()
            (root / part / "partition").write_text("1\n")
            (root / part / "size").write_text("2048\n")
            (block / part).symlink_to(root / part)
            (view.dev / part).write_bytes(b"")
    image = card(tmp_path)
    for part, disk in (("loop0p1", "loop0"), ("mmcblk0p2", "mmcblk0")):
        message = refuse(image, view.dev / part, view, "is a partition of")
        assert f"is a partition of {view.dev / disk}" in message
    for disk in ("nvme0n1", "loop0", "mmcblk0"):
        target = flash_target.inspect(view.dev / disk, view)
        assert target.parent_disk is None
        assert flash_target.refusals(target, image.stat().st_size, view, force=False) == []


@needs_bmaptool
def test_a_loop_device_on_the_image_itself_is_refused(tmp_path, capsys):
    """A real loop device whose backing file is the image: writing it writes the image."""
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    images_dir = tmp_path / "images"
    make_card(images_dir, size=8 * MiB, chunks=(1,))
    before = _digests(images_dir)
    setup = subprocess.run(
        ["losetup", "-f", "--show", str(images_dir / flash.IMAGE)], capture_output=True, text=True
    )
    if setup.returncode != 0:
        pytest.skip(f"cannot attach a loop device here: {setup.stderr.strip()}")
    loop = Path(setup.stdout.strip())
    try:
        assert _flash_cli(images_dir, loop, "--force") == 2
        err = capsys.readouterr().err
        assert f"{loop} (a loop device on {images_dir / flash.IMAGE})" in err
        assert "the flash's own input" in err
    finally:
        subprocess.run(["losetup", "-d", str(loop)], check=False)
    assert _digests(images_dir) == before
