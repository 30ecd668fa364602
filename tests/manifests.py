"""Manifests for tests: a complete, valid record with only what a test cares about changed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fwgen import manifest
from fwgen.board import load_board

SAMPLE: dict[str, Any] = {
    "manifest_version": manifest.VERSION,
    "board": "vexpress",
    "build": "kernel-only",
    "kernel": {
        "variant": "6.1",
        "version": "6.1.100",
        "release": "6.1.100",
        "source": manifest.tarball_source("linux-6.1.100.tar.xz", "ab" * 32),
        "series": {"0001-demo.patch": "cd" * 32},
        "config_sha256": "12" * 32,
        "device_tree": "vexpress-v2p-ca9",
    },
    "toolchain": {"origin": "test", "prefix": "arm-linux-gnueabi-", "version": "12.2.0"},
    "modules": [
        {
            "name": "usermodehelper_demo",
            "package": "usermodehelper-demo",
            "source": "34" * 32,
            "sha256": "ef" * 32,
        },
        {
            "name": "myevent_source",
            "package": "myevent-source",
            "source": "56" * 32,
            "sha256": "fe" * 32,
        },
    ],
    "overlays": {"common": "78" * 32},
    "rootfs": {"file": "rootfs.cpio", "sha256": "01" * 32},
    "images": {},
    "fwgen_version": "0.0.0-test",
}


def record(changes: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """SAMPLE with `changes` merged in (nested objects merge key by key; a None value drops
    the key) and `top` set at the top level."""

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        for key, value in extra.items():
            if value is None:
                base.pop(key, None)
            elif isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    return merge(copy.deepcopy(SAMPLE), {**(changes or {}), **top})


def sample(changes: dict[str, Any] | None = None, **top: Any) -> manifest.Manifest:
    return manifest.from_record(record(changes, **top), "test manifest")


def write(directory: Path, changes: dict[str, Any] | None = None, **top: Any) -> Path:
    """manifest.json in `directory` (without image hashes: images.finalize adds those)."""
    path = directory / "manifest.json"
    path.write_text(json.dumps(record(changes, **top), indent=2, sort_keys=True) + "\n")
    return path


BUILDROOT = manifest.BuildrootInputs(
    version="2025.02.16",
    file="buildroot-2025.02.16.tar.xz",
    sha256="9a" * 32,
    tree_version="2025.02.16",
    defconfig_sha256="bc" * 32,
)

# The vexpress recipe's kernel-module packages (board/vexpress/board.toml, module_packages).
VEXPRESS_MODULE_PACKAGES = load_board("vexpress").module_packages
