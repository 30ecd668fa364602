"""The images/ directory contract shared by the Buildroot and kernel-only paths.

Both paths leave the same names (zImage, <dtb>, rootfs.*, sdcard.img, ...) plus:
- manifest.json: a `fwgen.Manifest` (inputs with hashes, toolchain, kernel release,
  fwgen version) with the sha256 of every image file;
- SHA256SUMS: `sha256sum -c` compatible, covering every file including manifest.json.
`fwgen smoke`, `fwgen flash` and `fwgen release` read this contract, never a build's internals.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from fwgen import fsutil, manifest
from fwgen.errors import FwgenError
from fwgen.log import progress_disabled
from fwgen.manifest import Manifest

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


def image_files(images: Path) -> list[Path]:
    return sorted(
        p
        for p in images.iterdir()
        if p.is_file() and p.name not in (MANIFEST, SUMS) and not p.name.startswith(".")
    )


def finalize(images: Path, built: Manifest) -> Manifest:
    """Write manifest.json (`built` with every image's sha256) and SHA256SUMS into `images`."""
    built = built.with_images({p.name: fsutil.sha256_file(p) for p in image_files(images)})
    manifest_text = json.dumps(built.to_record(), indent=2, sort_keys=True) + "\n"
    fsutil.write_atomic(images / MANIFEST, manifest_text, mode=0o644)
    files = [*image_files(images), images / MANIFEST]
    lines = [f"{fsutil.sha256_file(p)}  {p.name}\n" for p in files]
    fsutil.write_atomic(images / SUMS, "".join(sorted(lines, key=lambda x: x[66:])), mode=0o644)
    return built


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FwgenError(f"{path} is not valid JSON: {e}", manifest.REBUILD) from None


def load_manifest(images: Path) -> Manifest:
    path = images / MANIFEST
    if not path.is_file():
        raise FwgenError(
            f"{images}: no {MANIFEST}: not an fwgen images directory",
            "build first (fwgen build BOARD) or point --images at a build's images/ folder",
        )
    return manifest.from_record(_read_json(path), str(path))


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
        recorded = load_manifest(images).images
        for name, digest in sorted(recorded.items()):
            if listed.get(name) != digest:
                problems.append(f"{name}: {MANIFEST} and {SUMS} disagree")
    return problems


# --- reading an images directory or a release directory -----------------------------------

RELEASE_KEYS = ("release", "images")


@dataclass(frozen=True)
class ImageFile:
    """One image of a build, as a directory holds it."""

    name: str  # the build's name for it: sdcard.img
    path: Path  # the file that holds it: sdcard.img, or sdcard.img.xz in a release
    sha256: str | None  # the content's sha256 as the manifest records it (None: not recorded)

    @property
    def compressed(self) -> bool:
        return self.path.name.endswith(".xz") and not self.name.endswith(".xz")

    def open(self) -> IO[bytes]:
        """The image's content (decompressed when the directory holds it compressed)."""
        return lzma.open(self.path, "rb") if self.compressed else self.path.open("rb")


@dataclass(frozen=True)
class Layout:
    """An images directory (a build's images/) or a release directory, read the same way."""

    directory: Path
    manifest: Manifest | None  # the build's manifest (None: the directory has none)
    release: dict[str, Any] | None  # a release's own record, None for a build's images/
    files: dict[str, ImageFile]

    def file(self, name: str) -> ImageFile | None:
        return self.files.get(name)


def is_release_record(data: Any) -> bool:
    return isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in RELEASE_KEYS)


def read_layout(directory: Path) -> Layout:
    """What `directory` holds: the build's manifest and where each image is.

    A release directory (manifest.json with "release" and "images") names each image's file
    in release.files (e.g. sdcard.img -> sdcard.img.xz); a build's images/ holds them under
    their own names. A directory without manifest.json is read by its file names.
    """
    path = directory / MANIFEST
    data = _read_json(path) if path.is_file() else None
    if is_release_record(data):
        built = manifest.from_record(data["images"], f"{path}: images")
        files = {}
        for name, entry in (data["release"].get("files") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                held = directory / Path(entry["file"]).name
                files[name] = ImageFile(name, held, built.images.get(name))
        return Layout(directory, built, data["release"], files)
    found = None if data is None else manifest.from_record(data, str(path))
    recorded = found.images if found else {}
    files = {
        p.name: ImageFile(p.name, p, recorded.get(p.name))
        for p in (image_files(directory) if directory.is_dir() else [])
    }
    return Layout(directory, found, None, files)


def content_sha256(image: ImageFile) -> tuple[str, int]:
    """(sha256, size) of the image's content, read in large blocks (with a progress bar)."""
    digest = hashlib.sha256()
    size = 0
    with (
        image.open() as f,
        tqdm(unit="B", unit_scale=True, disable=progress_disabled(), desc="check") as bar,
    ):
        while chunk := f.read(fsutil.CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return digest.hexdigest(), size


def listed_sha256(directory: Path, file: Path) -> str | None:
    """The sha256 SHA256SUMS of `directory` lists for `file` (None: not listed, or no SUMS)."""
    sums = directory / SUMS
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.lstrip("*") == file.name:
            return digest
    return None


@dataclass(frozen=True)
class Checked:
    """An image whose content matched its directory's records: what, and against what."""

    image: ImageFile
    sha256: str
    size: int
    against: str


def check_image(layout: Layout, name: str) -> Checked:
    """The image `name` read whole and compared with SHA256SUMS and manifest.json (both
    layouts); FwgenError when they are missing, disagree or do not match it."""
    image = layout.file(name)
    where = layout.directory
    if image is None or not image.path.is_file():
        raise FwgenError(f"no {name} in {where}")
    rebuild = "rebuild the images, or download the release again; nothing was written"
    listed = listed_sha256(where, image.path)
    if listed is None:
        raise FwgenError(
            f"{where} has no {SUMS} entry for {image.path.name}: cannot check {name} "
            "before writing it",
            "use the images/ folder of an fwgen build or an fwgen release, which list "
            f"their files in {SUMS}",
        )
    if image.sha256 is None:
        raise FwgenError(
            f"{where}/{MANIFEST} records no sha256 for {name}: cannot check it", rebuild
        )
    if not image.compressed:
        if listed != image.sha256:
            raise FwgenError(f"{where}: {SUMS} and {MANIFEST} disagree about {name}", rebuild)
        digest, size = content_sha256(image)
        if digest != listed:
            raise FwgenError(
                f"{image.path} does not match {SUMS} (sha256 {digest}, listed {listed})", rebuild
            )
        return Checked(image, digest, size, f"{SUMS} and {MANIFEST}")
    if fsutil.sha256_file(image.path) != listed:
        raise FwgenError(f"{image.path} does not match {SUMS}", rebuild)
    digest, size = content_sha256(image)
    if digest != image.sha256:
        raise FwgenError(
            f"{image.path} decompresses to sha256 {digest}, but {MANIFEST} records "
            f"{image.sha256} for {name}",
            rebuild,
        )
    return Checked(image, digest, size, f"{SUMS} and the release's {MANIFEST}")


def check_listed(layout: Layout, path: Path) -> None:
    """A helper file (a .bmap) must match its SHA256SUMS entry."""
    listed = listed_sha256(layout.directory, path)
    if listed is None or fsutil.sha256_file(path) != listed:
        state = "is not listed in" if listed is None else "does not match"
        raise FwgenError(
            f"{path} {state} {layout.directory / SUMS}",
            "rebuild the images, or download the release again; nothing was written",
        )
