"""The images/ contract: manifest.json + SHA256SUMS that `sha256sum -c` accepts."""

from __future__ import annotations

import json
import subprocess

from fwgen import fsutil, images
from tests import manifests


def _images(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    (d / "zImage").write_bytes(b"kernel" * 1000)
    (d / "vexpress-v2p-ca9.dtb").write_bytes(b"\xd0\x0d\xfe\xed" + b"x" * 100)
    return d


def test_finalize_writes_manifest_and_sums_that_sha256sum_accepts(tmp_path):
    d = _images(tmp_path)
    images.finalize(d, manifests.sample())
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["board"] == "vexpress"
    assert set(manifest["images"]) == {"zImage", "vexpress-v2p-ca9.dtb"}
    assert manifest["images"]["zImage"] == fsutil.sha256_file(d / "zImage")
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=d, check=True)
    assert images.verify(d) == []


def test_verify_reports_tampering_missing_and_unlisted_files(tmp_path):
    d = _images(tmp_path)
    images.finalize(d, manifests.sample())
    with (d / "zImage").open("r+b") as f:
        f.write(b"K")
    (d / "vexpress-v2p-ca9.dtb").unlink()
    (d / "extra.bin").write_bytes(b"?")
    assert images.verify(d) == [
        "vexpress-v2p-ca9.dtb: listed in SHA256SUMS but missing",
        "zImage: sha256 differs from SHA256SUMS",
        "extra.bin: not listed in SHA256SUMS",
    ]
