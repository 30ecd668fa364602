"""`fwgen release --verify`: a received release directory or archive checked against its
SHA256SUMS, its manifest, the images it was made from and the SD card's bmap.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from fwgen import images, manifest
from fwgen.errors import FwgenError
from fwgen.flash import BMAP, IMAGE, bmap_ranges

SUMS = images.SUMS
MANIFEST = images.MANIFEST
_CHUNK = 1 << 20


def verify_release(path: Path) -> list[str]:
    """Problems with a release directory or archive (empty: it verifies)."""
    if path.is_dir():
        return _verify_dir(path)
    if not path.is_file():
        raise FwgenError(f"{path} does not exist", "give a release directory or .tar.gz archive")
    with tempfile.TemporaryDirectory(prefix="fwgen-verify-") as tmp:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            return [f"{path.name}: not a readable release archive ({e})"]
        tops = list(Path(tmp).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            return [f"{path.name}: expected one top-level directory, found {len(tops)} entries"]
        return [f"{path.name}: {p}" for p in _verify_dir(tops[0])]


def release_record(path: Path) -> dict[str, Any] | None:
    """The manifest.json of a release directory or archive (None when it cannot be read)."""
    try:
        if path.is_dir():
            data = json.loads((path / MANIFEST).read_text())
        else:
            with tarfile.open(path) as tar:
                member = next(
                    (
                        m
                        for m in tar.getmembers()
                        if m.name.count("/") == 1 and m.isfile() and m.name.endswith(f"/{MANIFEST}")
                    ),
                    None,
                )
                handle = tar.extractfile(member) if member else None
                if handle is None:
                    return None
                data = json.loads(handle.read())
    except (OSError, ValueError, tarfile.TarError, EOFError):
        return None
    return data if isinstance(data, dict) else None


def tested_state(record: dict[str, Any] | None) -> str:
    """'' when the release's images passed fwgen smoke, else why they count as untested."""
    smoke_record = (record or {}).get("smoke")
    if not isinstance(smoke_record, dict):
        return "the manifest records no smoke verdict"
    if smoke_record.get("allow_untested") or not smoke_record.get("passed"):
        why = smoke_record.get("why_untested") or "no passing smoke run"
        return f"released with --allow-untested: {why}"
    return ""


def _verify_dir(stage: Path) -> list[str]:
    sums = stage / SUMS
    if not sums.is_file():
        return [f"{SUMS} is missing"]
    present = sorted(f.relative_to(stage).as_posix() for f in stage.rglob("*") if f.is_file())
    listed, problems = images.check_sums(stage, [rel for rel in present if rel != SUMS])
    if problems:
        return problems
    try:
        record = json.loads((stage / MANIFEST).read_text())
        release = record["release"]
        built = manifest.from_record(record["images"], f"{MANIFEST}: images")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{MANIFEST}: not a release manifest ({e})"]
    except FwgenError as e:
        return [str(e)]
    for rel, digest in sorted((release.get("sha256") or {}).items()):
        if listed.get(rel) != digest:
            problems.append(f"{rel}: {MANIFEST} and {SUMS} disagree")
    for original, digest in sorted(built.images.items()):
        entry = (release.get("files") or {}).get(original)
        if entry is None:
            problems.append(f"{original}: in the images manifest but not in the release")
            continue
        file = stage / entry["file"]
        if not file.is_file():
            problems.append(f"{entry['file']}: missing")
        elif _content_sha256(file) != digest:
            problems.append(f"{entry['file']}: content differs from the built {original}")
    card = (release.get("files") or {}).get(IMAGE)
    if card and (stage / BMAP).is_file() and not problems:
        problems += [f"{card['file']}: {p}" for p in check_bmap(stage / card["file"], stage / BMAP)]
    return problems


def _open_content(path: Path) -> IO[bytes]:
    """The release file's content, decompressed when fwgen compressed it."""
    if path.name.endswith(".xz"):
        return lzma.open(path, "rb")
    return path.open("rb")


def _content_sha256(path: Path) -> str:
    """sha256 of what the release file holds (decompressed when fwgen compressed it)."""
    digest = hashlib.sha256()
    with _open_content(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_exact(f: IO[bytes], size: int) -> Iterator[bytes]:
    while size > 0:
        chunk = f.read(min(_CHUNK, size))
        if not chunk:
            return
        size -= len(chunk)
        yield chunk


def check_bmap(image: Path, bmap: Path) -> list[str]:
    """Each mapped range's sha256 in `bmap` against the (decompressed) image, streaming."""
    size, block, ranges = bmap_ranges(bmap)
    problems: list[str] = []
    position = 0
    with _open_content(image) as f:
        for first, last, checksum in sorted(ranges):
            start, end = first * block, min((last + 1) * block, size)
            for _ in _read_exact(f, start - position):
                pass
            digest = hashlib.sha256()
            got = 0
            for chunk in _read_exact(f, end - start):
                digest.update(chunk)
                got += len(chunk)
            position = start + got
            if got != end - start:
                problems.append(f"shorter than {BMAP} says (ends inside blocks {first}-{last})")
                break
            if checksum and len(checksum) == 64 and digest.hexdigest() != checksum:
                problems.append(f"blocks {first}-{last} differ from {BMAP}")
        rest = sum(len(c) for c in iter(lambda: f.read(_CHUNK), b""))
        if position + rest != size and not problems:
            problems.append(f"{position + rest} bytes, but {BMAP} says {size}")
    return problems
