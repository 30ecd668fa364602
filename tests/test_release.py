"""fwgen release: bundle, verify, tamper, reproduce, and refuse untested images."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from fwgen import fsutil, images, release, release_sbom, release_verify, smoke, smoke_report
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.errors import FwgenError
from fwgen.manifest import Manifest
from tests import manifests
from tests.test_flash import MiB, make_card, needs_bmaptool

BOARD = "vexpress"
DTB = "vexpress-v2p-ca9.dtb"


def kernel_manifest(build: str) -> Manifest:
    return manifests.sample(build=build)


def kernel_only_images(root: Path) -> Path:
    """The kernel-only layout: zImage, dtb, rootfs.cpio.gz, manifest.json, SHA256SUMS."""
    out = root / "vexpress-6.1-kernel" / "images"
    out.mkdir(parents=True)
    (out / "zImage").write_bytes(os.urandom(3 * MiB))  # large, but compressed already
    (out / DTB).write_bytes(b"\xd0\x0d\xfe\xed" + os.urandom(2000))
    with gzip.GzipFile(out / "rootfs.cpio.gz", "wb", mtime=0) as f:
        f.write(b"070701" + os.urandom(5000))
    (out.parent / "obj").mkdir()
    (out.parent / "obj" / ".config").write_text("CONFIG_ARM=y\n")
    config = fsutil.sha256_file(out.parent / "obj" / ".config")
    images.finalize(out, manifests.sample(kernel={"config_sha256": config}))
    return out


FAKE_OUTPUT_MAKEFILE = """\
# A FAKE Buildroot output directory (tests only): answers show-info and legal-info the way
# Buildroot's generated O= Makefile would, so fwgen's release orchestration can be tested.
MAKEARGS := -C {tree}
show-info:
\t@cat show-info.json
legal-info:
\t@mkdir -p legal-info/licenses/busybox-1.36.1 legal-info/sources/busybox-1.36.1
\t@printf 'PACKAGE,VERSION,LICENSE\\nbusybox,1.36.1,GPL-2.0\\n' > legal-info/manifest.csv
\t@echo 'GPL text' > legal-info/licenses/busybox-1.36.1/LICENSE
\t@echo 'big source' > legal-info/sources/busybox-1.36.1/busybox-1.36.1.tar.bz2
"""

FAKE_GENERATOR = """\
# A FAKE utils/generate-cyclonedx (tests only): reads show-info JSON, prints a tiny BOM.
import json, os, sys
info = json.load(sys.stdin)
schema = os.path.join(os.environ["BR2_DL_DIR"], "cyclonedx", "spdx-1.6.schema.json")
ids = json.load(open(schema)).get("enum", [])
print(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
    {"name": n, "version": p.get("version", ""), "spdx_ids_known": len(ids)}
    for n, p in sorted(info.items())]}))
"""


def buildroot_images(root: Path, tree: Path | None = None) -> Path:
    """A Buildroot-like layout (+ rootfs.ext2, sdcard.img + .bmap, start-qemu.sh) in a FAKE
    Buildroot output directory; `tree` is the Buildroot tree (default: a fake one)."""
    output = root / "vexpress-6.1"
    out = output / "images"
    if tree is None:
        tree = root / "fake-buildroot-tree"
        (tree / "utils").mkdir(parents=True)
        (tree / "utils" / "generate-cyclonedx").write_text(FAKE_GENERATOR)
    make_card(out, size=16 * MiB, chunks=(1, 8))
    shutil.copyfile(out / "sdcard.img", out / "rootfs.ext2")
    (out / "zImage").write_bytes(os.urandom(MiB // 2))
    (out / DTB).write_bytes(b"\xd0\x0d\xfe\xed" + os.urandom(2000))
    (out / "start-qemu.sh").write_text('#!/bin/sh\nexec qemu-system-arm "$@"\n')
    (out / "start-qemu.sh").chmod(0o755)
    (output / "Makefile").write_text(FAKE_OUTPUT_MAKEFILE.format(tree=tree))
    info = {
        "busybox": {
            "type": "target",
            "name": "busybox",
            "version": "1.36.1",
            "licenses": "GPL-2.0",
            "virtual": False,
            "dependencies": [],
            "reverse_dependencies": [],
            "install_target": True,
            "install_staging": False,
            "install_images": False,
            "downloads": [],
            "dl_dir": "busybox",
            "license_files": ["LICENSE"],
            "redistributable": True,
        },
    }
    (output / "show-info.json").write_text(json.dumps(info))
    images.finalize(
        out, dataclasses.replace(kernel_manifest("buildroot"), buildroot=manifests.BUILDROOT)
    )
    return out


def passed_smoke(directory: Path, passed: bool = True) -> None:
    manifest = images.load_manifest(directory)
    report = smoke_report.SmokeReport(BOARD, "6.1", directory, "sd", Path("console.log"))
    report.results = [smoke_report.CheckResult("boot to login", "passed" if passed else "failed")]
    target = smoke.smoke_dir(directory)
    target.mkdir(parents=True, exist_ok=True)
    smoke.write_result(report, manifest, target)


def run_release(directory: Path, out: Path, *extra: str) -> int:
    argv = ["release", BOARD, "--images", str(directory), "--out", str(out), "--version", "1.0"]
    return main([*argv, *extra])


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


# --- kernel-only ----------------------------------------------------------------------------


def test_kernel_only_release_verifies_and_says_what_is_in_it(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    assert run_release(directory, tmp_path / "dist") == 0
    name = "vexpress-6.1-1.0"
    rel = tmp_path / "dist" / name
    archive = tmp_path / "dist" / f"{name}.tar.gz"
    assert archive.is_file() and rel.is_dir()
    names = sorted(p.name for p in rel.iterdir())
    assert names == sorted(
        [
            "zImage",
            DTB,
            "rootfs.cpio.gz",
            "kernel.config",
            "manifest.json",
            "SHA256SUMS",
            release_sbom.SBOM,
            "README.txt",
        ]
    )
    manifest = json.loads((rel / "manifest.json").read_text())
    assert manifest["release"]["version"] == "1.0"
    assert manifest["images"]["kernel"]["series"] == {"0001-demo.patch": "cd" * 32}
    assert manifest["release"]["kernel_config"] == "kernel.config"
    assert manifest["smoke"]["passed"] and not manifest["smoke"]["allow_untested"]
    assert manifest["fwgen"]["version"]
    text = (rel / "README.txt").read_text()
    assert "GPL-2.0" in text and "sha256sum -c SHA256SUMS" in text and "-initrd" in text
    # sha256sum -c works on the directory as shipped
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=rel, check=True)
    capsys.readouterr()
    assert main(["release", "--verify", str(rel)]) == 0
    assert main(["release", "--verify", str(archive)]) == 0
    assert "OK" in capsys.readouterr().out
    assert not list((tmp_path / "dist").glob(".*"))  # no temporary leftovers


def test_kernel_only_sbom_has_the_required_cyclonedx_fields(tmp_path):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    made = release.make_release(load_board(BOARD), directory, tmp_path / "dist", version="1")
    bom = json.loads((made.directory / release_sbom.SBOM).read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"].startswith("1.")
    assert bom["version"] == 1 and bom["serialNumber"].startswith("urn:uuid:")
    assert bom["metadata"]["component"]["name"] == made.name
    by_name = {c["name"]: c for c in bom["components"]}
    assert {"linux", "usermodehelper_demo", "myevent_source", "busybox-rootfs"} <= set(by_name)
    assert by_name["myevent_source"]["hashes"] == [{"alg": "SHA-256", "content": "fe" * 32}]
    for component in bom["components"]:
        assert component["type"] and component["bom-ref"] and component["name"]
    linux = by_name["linux"]
    assert linux["version"] == "6.1.100"
    assert linux["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert linux["licenses"] == [{"license": {"id": "GPL-2.0-only"}}]
    assert linux["components"][0]["name"] == "0001-demo.patch"
    refs = {c["bom-ref"] for c in bom["components"]}
    assert set(bom["dependencies"][0]["dependsOn"]) == refs


def test_images_from_an_older_fwgen_are_refused_with_the_fix(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    record = json.loads((directory / "manifest.json").read_text())
    del record["manifest_version"]
    (directory / "manifest.json").write_text(json.dumps(record))
    sums = directory / "SHA256SUMS"  # consistent, as an older fwgen left them
    digest = fsutil.sha256_file(directory / "manifest.json")
    lines = [
        f"{digest}  manifest.json" if "  manifest.json" in x else x
        for x in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")
    code = main(["release", BOARD, "--images", str(directory), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2
    assert "before manifests had a manifest_version" in err
    assert "rebuild the images with this fwgen" in err
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_tampering_with_one_byte_fails_verify_naming_the_file(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    made = release.make_release(load_board(BOARD), directory, tmp_path / "dist", version="1")
    dtb = made.directory / DTB
    data = bytearray(dtb.read_bytes())
    data[100] ^= 0x01
    dtb.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["release", "--verify", str(made.directory)]) == 2
    err = capsys.readouterr().err
    assert f"{DTB}: sha256 differs" in err


def test_a_tampered_archive_fails_verify(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    made = release.make_release(load_board(BOARD), directory, tmp_path / "dist", version="1")
    # rewrite the archive with README.txt changed by one byte
    with tarfile.open(made.archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for member, data in members:
            if member.name.endswith("README.txt"):
                data = data[:-1] + b"?"
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    capsys.readouterr()
    assert main(["release", "--verify", str(bad)]) == 2
    assert "README.txt: sha256 differs" in capsys.readouterr().err


def test_two_builds_are_byte_identical(tmp_path):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    board = load_board(BOARD)
    first = release.make_release(board, directory, tmp_path / "a", version="1")
    second = release.make_release(board, directory, tmp_path / "b", version="1")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    again = release.make_release(board, directory, tmp_path / "a", version="1")
    assert again.archive.read_bytes() == second.archive.read_bytes()
    with tarfile.open(first.archive) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert {m.mtime for m in members} == {release.DEFAULT_EPOCH}
    assert first.archive.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_source_date_epoch_sets_the_mtimes(tmp_path, monkeypatch):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    made = release.make_release(load_board(BOARD), directory, tmp_path / "d", version="1")
    with tarfile.open(made.archive) as tar:
        assert {m.mtime for m in tar} == {1700000000}


# --- refusals -------------------------------------------------------------------------------


def test_untested_images_are_refused(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    assert run_release(directory, tmp_path / "dist") == 2
    err = capsys.readouterr().err
    assert "untested" in err and "fwgen smoke vexpress" in err and "--allow-untested" in err
    assert not (tmp_path / "dist" / "vexpress-6.1-1.0.tar.gz").exists()


def test_a_failed_smoke_run_is_refused(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory, passed=False)
    assert run_release(directory, tmp_path / "dist") == 2
    assert "last smoke run failed (boot to login)" in capsys.readouterr().err


def test_a_smoke_result_for_other_images_is_refused(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    (directory / DTB).write_bytes(b"\xd0\x0d\xfe\xed" + b"new")
    images.finalize(directory, images.load_manifest(directory))  # a rebuild, not re-smoked
    assert run_release(directory, tmp_path / "dist") == 2
    assert "for other images" in capsys.readouterr().err


def test_allow_untested_is_recorded(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    assert run_release(directory, tmp_path / "dist", "--allow-untested") == 0
    assert "WARNING: released untested images" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "dist" / "vexpress-6.1-1.0" / "manifest.json").read_text())
    assert manifest["smoke"]["allow_untested"] is True and manifest["smoke"]["passed"] is False
    assert "fwgen smoke has not been run" in manifest["smoke"]["why_untested"]


def test_images_that_do_not_match_their_manifest_are_refused(tmp_path, capsys):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    with (directory / "zImage").open("r+b") as f:
        f.write(b"X")
    assert run_release(directory, tmp_path / "dist", "--allow-untested") == 2
    assert "zImage: sha256 differs from SHA256SUMS" in capsys.readouterr().err


def test_a_bad_version_is_refused(tmp_path):
    directory = kernel_only_images(tmp_path / "build")
    passed_smoke(directory)
    with pytest.raises(FwgenError, match="--version"):
        release.make_release(load_board(BOARD), directory, tmp_path / "d", version="../x")


def test_default_version_is_git_describe_or_fwgen_version():
    version = release.default_version()
    assert version and "/" not in version


# --- Buildroot layout -------------------------------------------------------------------------


@needs_bmaptool
def test_buildroot_release_compresses_images_and_checks_the_bmap(tmp_path, capsys):
    directory = buildroot_images(tmp_path / "build")
    passed_smoke(directory)
    made = release.make_release(load_board(BOARD), directory, tmp_path / "dist", version="2")
    names = {p.name for p in made.directory.iterdir()}
    assert {
        "sdcard.img.xz",
        "rootfs.ext2.xz",
        "sdcard.img.bmap",
        "zImage",
        "start-qemu.sh",
    } <= names
    assert "sdcard.img" not in names
    assert (made.directory / "sdcard.img.xz").stat().st_size < 4 * MiB
    # legal-info without the bundled sources
    assert (made.directory / "legal-info" / "manifest.csv").is_file()
    assert not (made.directory / "legal-info" / "sources").exists()
    bom = json.loads((made.directory / release_sbom.SBOM).read_text())
    assert bom["components"][0]["name"] == "busybox"
    assert "bmaptool copy sdcard.img.xz" in (made.directory / "README.txt").read_text()
    assert release_verify.verify_release(made.directory) == []
    assert release_verify.verify_release(made.archive) == []
    with tarfile.open(made.archive) as tar:
        modes = {m.name.split("/", 1)[-1]: m.mode for m in tar}
    assert modes["start-qemu.sh"] == 0o755 and modes["zImage"] == 0o644
    assert made.directory.stat().st_mode & 0o777 == 0o755
    assert "  legal-info/\n" in (made.directory / "README.txt").read_text()
    # the compressed image is flashable with bmaptool as shipped
    target = tmp_path / "card.img"
    subprocess.run(
        [
            "bmaptool",
            "copy",
            "--bmap",
            str(made.directory / "sdcard.img.bmap"),
            str(made.directory / "sdcard.img.xz"),
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    assert target.read_bytes() == (directory / "sdcard.img").read_bytes()


def test_a_bmap_that_does_not_match_its_image_fails_verify(tmp_path, capsys):
    directory = buildroot_images(tmp_path / "build")
    passed_smoke(directory)
    made = release.make_release(load_board(BOARD), directory, tmp_path / "dist", version="2")
    # a consistent release (sums redone) whose bmap checksums describe other data
    bmap = made.directory / "sdcard.img.bmap"
    text = bmap.read_text()
    first = text.index('chksum="') + len('chksum="')
    bmap.write_text(text[:first] + "0" * 64 + text[first + 64 :])
    assert release_verify.check_bmap(made.directory / "sdcard.img.xz", bmap) == [
        "blocks 256-511 differ from sdcard.img.bmap"
    ]


def test_buildroot_images_without_their_output_directory_are_refused(tmp_path):
    directory = buildroot_images(tmp_path / "build")
    passed_smoke(directory)
    (directory.parent / "Makefile").unlink()
    with pytest.raises(FwgenError, match="no Buildroot Makefile"):
        release.make_release(load_board(BOARD), directory, tmp_path / "d", version="2")


def test_real_buildroot_cyclonedx_generator_runs_offline(tmp_path, br_tree):
    """Buildroot's own utils/generate-cyclonedx runs offline on `make show-info` output."""
    directory = buildroot_images(tmp_path / "build", tree=br_tree)
    passed_smoke(directory)
    schema = tmp_path / "spdx.schema.json"
    schema.write_text(json.dumps({"enum": ["GPL-2.0", "MIT"]}))
    made = release.make_release(
        load_board(BOARD), directory, tmp_path / "dist", version="3", spdx_schema=schema
    )
    bom = json.loads((made.directory / release_sbom.SBOM).read_text())
    assert bom["bomFormat"] == "CycloneDX"
    busybox = next(c for c in bom["components"] if c["name"] == "busybox")
    assert busybox["licenses"] == [{"license": {"id": "GPL-2.0"}}]


def test_the_recipes_patch_files_are_shipped_when_they_match(tmp_path):
    board = load_board(BOARD)
    patches_dir = board.kernel("6.1").patches_dir()
    series = {p.name: fsutil.sha256_file(p) for p in sorted(patches_dir.glob("*.patch"))}
    directory = kernel_only_images(tmp_path / "build")
    built = images.load_manifest(directory)
    kernel = dataclasses.replace(built.kernel, series={**series, "0099-gone.patch": "00" * 32})
    images.finalize(directory, dataclasses.replace(built, kernel=kernel))
    made = release.make_release(
        board, directory, tmp_path / "dist", version="1", allow_untested=True
    )
    shipped = sorted(p.name for p in (made.directory / "patches").iterdir())
    assert shipped == sorted(series) and series
    recorded = json.loads((made.directory / "manifest.json").read_text())
    assert recorded["release"]["patches"] == [f"patches/{n}" for n in sorted(series)]
    assert "patches/" in (made.directory / "README.txt").read_text()


@pytest.mark.e2e
def test_release_of_real_kernel_only_images(kernel_builds, tmp_path):
    """The e2e kernel-only images: smoke, release, verify, tamper, reproduce."""
    from fwgen import qemu

    board = load_board(BOARD)
    directory = kernel_builds("6.1")
    report = smoke.run(board, qemu.find_images(board, directory), keep_going=True)
    assert report.passed
    first = release.make_release(board, directory, tmp_path / "a", version="e2e")
    second = release.make_release(board, directory, tmp_path / "b", version="e2e")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert release_verify.verify_release(first.archive) == []
    # the release directory itself boots and passes, results written elsewhere
    released = qemu.find_images(board, first.directory)
    report = smoke.run(board, released, keep_going=True, log_dir=tmp_path / "release-smoke")
    assert report.passed, "\n".join(smoke_report.format_result(r) for r in report.results)
    assert not (tmp_path / "a" / f"{first.name}-smoke").exists()
    with (first.directory / "zImage").open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert release_verify.verify_release(first.directory) == [
        "zImage: sha256 differs from SHA256SUMS"
    ]
