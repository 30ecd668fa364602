"""The typed manifest: what both build paths write and smoke, flash and release read."""

from __future__ import annotations

import pytest

from fwgen import manifest
from fwgen.errors import FwgenError
from tests import manifests


def test_a_record_reads_back_unchanged():
    record = manifests.record(images={"zImage": "aa" * 32})
    assert manifest.from_record(record, "m").to_record() == record
    with_buildroot = manifests.record(build="buildroot", rootfs=None)
    with_buildroot["buildroot"] = manifest.BuildrootInputs("v", "f", "s", "t", "d").__dict__
    assert manifest.from_record(with_buildroot, "m").to_record() == with_buildroot


def test_typed_fields():
    built = manifests.sample()
    assert built.kernel.variant == "6.1" and built.kernel.series == {"0001-demo.patch": "cd" * 32}
    assert [m.name for m in built.modules] == ["usermodehelper_demo", "myevent_source"]
    assert built.buildroot is None and built.rootfs is not None


@pytest.mark.parametrize(
    ("changes", "message", "fix"),
    [
        (
            {"manifest_version": None},
            "written by fwgen 0.0.0-test, before manifests had a manifest_version",
            "rebuild the images with this fwgen",
        ),
        ({"manifest_version": 99}, "manifest_version 99, written by fwgen", "upgrade fwgen"),
        ({"manifest_version": "1"}, "manifest_version '1'", "rebuild the images"),
        ({"kernel": {"release": None}}, "m: kernel: 'release' is missing", "rebuild"),
        ({"kernel": {"series": ["a"]}}, "m: kernel: 'series' should be an object", "rebuild"),
        ({"overlays": {"common": 1}}, "m: 'overlays.common' should be a string", "rebuild"),
        ({"build": "yocto"}, "m: build is 'yocto', not one of buildroot, kernel-only", ""),
        ({"colour": "red"}, "m: unknown key 'colour'", "rebuild"),
        ({"modules": [{"name": "x"}]}, "m: modules[0]: 'package' is missing", "rebuild"),
    ],
)
def test_bad_manifests_name_what_is_wrong_and_the_fix(changes, message, fix):
    with pytest.raises(FwgenError) as e:
        manifest.from_record(manifests.record(changes), "m")
    assert message in str(e.value)
    assert fix in (e.value.hint or "")


@pytest.mark.parametrize("data", [[], {"images": {}}, {"bomFormat": "CycloneDX"}])
def test_a_foreign_json_file_is_not_an_fwgen_manifest(data):
    with pytest.raises(FwgenError, match="m: not an fwgen images manifest"):
        manifest.from_record(data, "m")


def test_source_words():
    assert manifest.source_words(manifest.tarball_source("linux-4.0.tar.xz", "ab")) == (
        "linux-4.0.tar.xz (sha256 ab)"
    )
    tree = {"kind": "tree", "tree": "linux", "version": "6.1.1", "git": {"commit": "c", "dirty": 1}}
    assert manifest.source_words(tree) == (
        "the source tree 'linux' (linux 6.1.1), git commit c with changes"
    )
