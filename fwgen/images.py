"""The images/ directory contract shared by the Buildroot and kernel-only paths.

Both paths leave the same names (zImage, <dtb>, rootfs.*, sdcard.img, ...) plus:
- manifest.json: what went in (inputs with hashes, toolchain, kernel release, fwgen version)
  and the sha256 of every image file;
- SHA256SUMS: `sha256sum -c` compatible, covering every file including manifest.json.
`fwgen smoke`, `fwgen flash` and `fwgen release` read this contract, never a build's internals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fwgen import __version__, fsutil
from fwgen.errors import FwgenError

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


def image_files(images: Path) -> list[Path]:
    return sorted(
        p
        for p in images.iterdir()
        if p.is_file() and p.name not in (MANIFEST, SUMS) and not p.name.startswith(".")
    )


def finalize(images: Path, manifest: dict[str, Any]) -> Path:
    """Write manifest.json (with every image's sha256) and SHA256SUMS into `images`."""
    record = {
        "fwgen_version": __version__,
        **manifest,
        "images": {p.name: fsutil.sha256_file(p) for p in image_files(images)},
    }
    manifest_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    fsutil.write_atomic(images / MANIFEST, manifest_text, mode=0o644)
    files = [*image_files(images), images / MANIFEST]
    lines = [f"{fsutil.sha256_file(p)}  {p.name}\n" for p in files]
    fsutil.write_atomic(images / SUMS, "".join(sorted(lines, key=lambda x: x[66:])), mode=0o644)
    return images / MANIFEST


def load_manifest(images: Path) -> dict[str, Any]:
    path = images / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FwgenError(
            f"{images}: no {MANIFEST}: not an fwgen images directory",
            "build first (fwgen build BOARD) or point --images at a build's images/ folder",
        ) from None
    except json.JSONDecodeError as e:
        raise FwgenError(f"{path}: not valid JSON ({e})") from None


def check_sums(directory: Path, present: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """`directory`/SHA256SUMS against the files: (name -> listed sha256, problems).

    Every listed file must exist with that sha256, and every name in `present` (paths
    relative to `directory`) must be listed.
    """
    listed: dict[str, str] = {}
    for line in (directory / SUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    problems: list[str] = []
    for name, digest in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: listed in {SUMS} but missing")
        elif fsutil.sha256_file(path) != digest:
            problems.append(f"{name}: sha256 differs from {SUMS}")
    problems += [f"{name}: not listed in {SUMS}" for name in present if name not in listed]
    return listed, problems


def verify(images: Path) -> list[str]:
    """Problems with `images` against its own SHA256SUMS and manifest (empty list: all good)."""
    sums = images / SUMS
    if not sums.is_file():
        return [f"{sums} is missing"]
    listed, problems = check_sums(images, [p.name for p in image_files(images)])
    if not problems:
        recorded = load_manifest(images).get("images", {})
        for name, digest in sorted(recorded.items()):
            if listed.get(name) != digest:
                problems.append(f"{name}: {MANIFEST} and {SUMS} disagree")
    return problems
