"""Release bundles: tested images, checksums, manifest, licences, SBOM and a README.

`make_release` turns a verified, smoke-tested images directory into `<out>/<name>/` and
`<out>/<name>.tar.gz`, where name is `<board>-<kernel variant>-<version>`. The same inputs give
byte-identical archives: sorted entries, owner 0:0, fixed modes, mtimes from SOURCE_DATE_EPOCH,
gzip and xz without timestamps. `verify_release` checks a received directory or archive.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwgen import __version__, fsutil, images, layout, manifest, paths, release_sbom, smoke
from fwgen.board import Board
from fwgen.errors import FwgenError
from fwgen.flash import BMAP, IMAGE
from fwgen.manifest import Manifest

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
README = "README.txt"
DEFAULT_EPOCH = 315532800  # 1980-01-01, when SOURCE_DATE_EPOCH is not set
COMPRESS_FROM = 1 << 20  # files at least this large are xz-compressed ...
ALREADY_COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4")  # ... unless they already are
NOT_COMPRESSED = ("zImage", "Image", "uImage")  # self-extracting kernels
_CHUNK = 1 << 20
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class Release:
    name: str
    directory: Path
    archive: Path
    tested: bool


# --- inputs -----------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists() or shutil.which("git") is None:
        return None
    result = subprocess.run(
        ["git", "-C", str(source), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise FwgenError(
            f"--version {version!r}: not usable in a file name",
            "use letters, digits, '.', '_', '+', '-' (starting with a letter or digit), "
            "e.g. --version 1.0",
        )
    return version


def default_version() -> str:
    """`git describe --always --dirty` of fwgen's source, else fwgen's own version."""
    return _git("describe", "--always", "--dirty") or __version__


def source_date_epoch() -> int:
    text = os.environ.get("SOURCE_DATE_EPOCH") or str(DEFAULT_EPOCH)
    if not text.isdigit():
        raise FwgenError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds")
    return int(text)


def check_images(directory: Path, board: Board) -> Manifest:
    """The manifest of `directory` once its files match it; FwgenError naming what differs."""
    problems = images.verify(directory)
    if problems:
        raise FwgenError(
            f"{directory} does not match its {images.MANIFEST}/{images.SUMS}:\n  "
            + "\n  ".join(problems),
            "rebuild (fwgen build BOARD), or release the images that were built and tested",
        )
    built = images.load_manifest(directory)
    if built.board != board.name:
        raise FwgenError(f"{directory} holds images for board '{built.board}'")
    return built


def smoke_verdict(directory: Path, built: Manifest) -> tuple[dict[str, Any] | None, str]:
    """(the smoke record, '') when it passed for exactly these images, else (record, why not)."""
    record = smoke.load_result(directory)
    where = smoke.smoke_dir(directory) / smoke.RESULT
    if record is None:
        return None, f"no smoke result ({where} is missing): fwgen smoke has not been run"
    if record.get("images") != dict(built.images):
        return record, f"{where} is for other images (their sha256s differ): smoke them again"
    if not record.get("passed"):
        failed = [n for n, s in sorted((record.get("checks") or {}).items()) if s != "passed"]
        return record, f"the last smoke run failed ({', '.join(failed) or 'no checks ran'})"
    return record, ""


def kernel_config(directory: Path, built: Manifest) -> Path | None:
    """The build's kernel .config, when it is still there and matches the manifest's sha256."""
    output = layout.build_of(directory)
    for candidate in (
        layout.KernelOnlyBuild(output).kernel_config,
        layout.BuildrootBuild(output).kernel_tree(built.kernel.version) / ".config",
    ):
        if candidate.is_file() and fsutil.sha256_file(candidate) == built.kernel.config_sha256:
            return candidate
    return None


def patch_files(board: Board, built: Manifest) -> list[Path]:
    """The recipe's patch files whose sha256s match the manifest's series."""
    try:
        patches_dir = board.kernel(built.kernel.variant).patches_dir()
    except FwgenError:
        return []
    return [
        patches_dir / name
        for name, digest in sorted(built.kernel.series.items())
        if (patches_dir / name).is_file() and fsutil.sha256_file(patches_dir / name) == digest
    ]


# --- writing the release directory ------------------------------------------------------------


def _compressible(path: Path) -> bool:
    return (
        path.stat().st_size >= COMPRESS_FROM
        and not path.name.endswith(ALREADY_COMPRESSED)
        and path.name not in NOT_COMPRESSED
    )


def _xz(source: Path, dest: Path) -> None:
    """xz with fixed settings (the format has no timestamps, so the output is reproducible)."""
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())


def readme(name: str, board: Board, built: Manifest, files: list[str], notes: list[str]) -> str:
    """README.txt: every command in it ("  $ ...") runs as shown from inside the release
    directory, also on a read-only copy of it (tested)."""
    dtb = f"{built.kernel.device_tree}.dtb"
    kernel_image = board.buildroot.kernel_image
    card = f"{IMAGE}.xz" in files
    arg = board.name  # the receiver names the board; see the note below for other boards
    builtin = board.source.resolve().is_relative_to(paths.boards_dir().resolve())
    lines = [
        f"{name}",
        "=" * len(name),
        "",
        f"Firmware for board '{board.name}': Linux {built.kernel.release or built.kernel.version}"
        f" ({built.build} build), made by fwgen {__version__}.",
        "Run the commands below in this directory; none of them writes into it.",
        "",
        "Files",
        "-----",
        *[f"  {f}" for f in files],
        "",
        "Verify",
        "------",
        f"  $ sha256sum -c {SUMS}",
        "  $ fwgen release --verify .",
        f"sha256sum checks every file (including {MANIFEST}); fwgen also checks the manifest,",
        "the decompressed images and the bmap.",
        "",
    ]
    if card:
        lines += [
            "Flash to an SD card (replace /dev/sdX with the card's whole-disk device)",
            "------------------------------------------------------------------------",
            f"  $ bmaptool copy {IMAGE}.xz /dev/sdX",
            f"  $ fwgen flash {arg} --images . --device /dev/sdX",
            f"bmaptool writes only the blocks {BMAP} maps and checks each; fwgen flash also",
            "checks the image against this release before writing and reads the card back.",
            "",
        ]
    lines += ["Boot in QEMU", "------------"]
    q = board.qemu
    base = shlex.join([q.binary, "-M", q.machine, "-m", q.memory, *q.args])
    if card:
        copy = '"${TMPDIR:-/tmp}/' + IMAGE + '"'
        lines += [
            f"  $ xz -dc {IMAGE}.xz > {copy}",
            f"  $ {base} -kernel {kernel_image} -dtb {dtb} \\",
            f'      -drive "file=${{TMPDIR:-/tmp}}/{IMAGE},if=sd,format=raw" '
            f"-append {shlex.quote(q.sd_append)}",
            "The card is a copy in $TMPDIR: QEMU writes to it.",
        ]
    else:
        rootfs = next((f for f in files if f.startswith("rootfs.cpio")), "rootfs.cpio.gz")
        lines += [
            f"  $ {base} -kernel {kernel_image} -dtb {dtb} \\",
            f"      -initrd {rootfs} -append {shlex.quote(q.initramfs_append)}",
        ]
    lines += [
        f"  $ fwgen run {arg} --images .",
        f"  $ fwgen smoke {arg} --images .",
        "fwgen run boots the same way; fwgen smoke boots it and runs the board's checks (its",
        "console log and verdict go next to this directory, or to a new directory under",
        "$TMPDIR when that cannot be written: the output says where; --results DIR chooses).",
    ]
    if not builtin:
        lines += [
            f"'{board.name}' is not one of fwgen's own boards: fwgen needs its recipe (put its",
            f"folder on FWGEN_BOARD_PATH, or give --board FILE instead of {board.name}).",
        ]
    lines += ["", "Licences", "--------", *notes, ""]
    return "\n".join(lines)


def _write_sums(stage: Path) -> None:
    lines = [
        f"{fsutil.sha256_file(p)}  {p.relative_to(stage).as_posix()}\n"
        for p in sorted(stage.rglob("*"))
        if p.is_file() and p.name != SUMS
    ]
    (stage / SUMS).write_text("".join(sorted(lines, key=lambda x: x[66:])))


def _fix_times(stage: Path, epoch: int) -> None:
    for path in [*sorted(stage.rglob("*")), stage]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def make_release(
    board: Board,
    directory: Path,
    out: Path,
    *,
    version: str | None = None,
    allow_untested: bool = False,
    spdx_schema: Path | None = None,
) -> Release:
    """Check `directory`, then write `<out>/<name>/` and `<out>/<name>.tar.gz` atomically."""
    built = check_images(directory, board)
    record, untested = smoke_verdict(directory, built)
    if untested and not allow_untested:
        raise FwgenError(
            f"refusing to release untested images: {untested}",
            f"run: fwgen smoke {board.argument} --images {directory} (or pass --allow-untested, "
            "which the release manifest records)",
        )
    version = check_version(version or default_version())
    name = f"{board.name}-{built.kernel.variant}-{version}"
    epoch = source_date_epoch()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        extra = _stage(stage, board, directory, built, name, version, epoch, spdx_schema)
        extra["smoke"] = {
            "passed": not untested,
            "allow_untested": bool(untested),
            **({"why_untested": untested} if untested else {}),
            "result": record,
        }
        _finish_manifest(stage, extra)
        _write_sums(stage)
        os.chmod(stage, 0o755)  # mkdtemp made it private
        _fix_times(stage, epoch)
        archive = out / f"{name}.tar.gz"
        _write_archive(stage, name, archive, epoch)
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return Release(name, final, archive, tested=not untested)


def _stage(
    stage: Path,
    board: Board,
    directory: Path,
    built: Manifest,
    name: str,
    version: str,
    epoch: int,
    spdx_schema: Path | None,
) -> dict[str, Any]:
    """Fill `stage` with everything but manifest.json and SHA256SUMS; the manifest's additions."""
    files: dict[str, dict[str, str]] = {}
    for path in images.image_files(directory):
        if _compressible(path):
            _xz(path, stage / f"{path.name}.xz")
            files[path.name] = {"file": f"{path.name}.xz", "compression": "xz"}
        else:
            shutil.copyfile(path, stage / path.name)
            if os.access(path, os.X_OK):
                os.chmod(stage / path.name, 0o755)
            files[path.name] = {"file": path.name}
    config = kernel_config(directory, built)
    if config:
        shutil.copyfile(config, stage / "kernel.config")
    patches = patch_files(board, built)
    if patches:
        (stage / "patches").mkdir()
        for patch in patches:
            shutil.copyfile(patch, stage / "patches" / patch.name)
    notes: list[str] = []
    output = release_sbom.buildroot_output(directory, built)
    if built.build == "buildroot" and output is None:
        raise FwgenError(
            f"{directory} came from a Buildroot build, but its output directory "
            f"({layout.build_of(directory)}) has no Buildroot Makefile: the licence information "
            "(make legal-info) and the SBOM (make show-info) come from there",
            "release from the images/ folder inside the Buildroot output directory",
        )
    log_file = stage.parent / f"{name}.log"
    if output is not None:
        release_sbom.add_legal_info(stage, output, log_file)
        sbom, sbom_note = release_sbom.buildroot_sbom(output, spdx_schema, log_file)
        sbom_how = f"Buildroot utils/generate-cyclonedx from make show-info ({sbom_note})"
        notes += [
            "  legal-info/ is Buildroot's 'make legal-info' output: manifest.csv lists every",
            "  target package with its licence; licenses/ holds the licence texts. The package",
            "  sources (legal-info/sources) are not bundled; they stay with the build.",
        ]
    else:
        sbom = release_sbom.kernel_only_sbom(name, built, epoch)
        sbom_how = "written by fwgen from the manifest (kernel-only build)"
        source = built.kernel.source
        notes += [
            "  Linux kernel and its patches: GPL-2.0-only (kernel COPYING; this is a kernel-only",
            "  build, so no Buildroot legal-info exists). The kernel modules: GPL-2.0-only.",
            "  The busybox-based initramfs: busybox is GPL-2.0-only.",
            *textwrap.wrap(
                f"Corresponding sources: the kernel was built from {manifest.source_words(source)} "
                "(manifest.json, kernel.source), plus patches/."
                + (
                    " That tree is not a published tarball: keep it with this release."
                    if source.get("kind") == "tree"
                    else ""
                ),
                88,
                initial_indent="  ",
                subsequent_indent="  ",
                break_long_words=False,
            ),
        ]
    (stage / release_sbom.SBOM).write_bytes(sbom)
    notes += [
        f"  SBOM ({release_sbom.SBOM}, CycloneDX {release_sbom.CYCLONEDX_SPEC}):",
        f"  {sbom_how}.",
    ]
    listed = sorted(
        {*(p.name + ("/" if p.is_dir() else "") for p in stage.iterdir())}
        | {
            README,
            MANIFEST,
            SUMS,
        }
    )
    (stage / README).write_text(readme(name, board, built, listed, notes))
    git_rev = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "release": {
            "name": name,
            "board": board.name,
            "version": version,
            "source_date_epoch": epoch,
            "files": files,
            "kernel_config": "kernel.config" if config else None,
            "patches": [f"patches/{p.name}" for p in patches],
            "sbom": {"file": release_sbom.SBOM, "how": sbom_how},
            "licences": "legal-info/" if output is not None else README,
        },
        "fwgen": {
            "version": __version__,
            "git_revision": git_rev,
            "git_dirty": bool(dirty) if git_rev else None,
        },
        "images": built.to_record(),
    }


def _finish_manifest(stage: Path, record: dict[str, Any]) -> None:
    record["release"]["sha256"] = {
        p.relative_to(stage).as_posix(): fsutil.sha256_file(p)
        for p in sorted(stage.rglob("*"))
        if p.is_file()
    }
    (stage / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _write_archive(stage: Path, name: str, archive: Path, epoch: int) -> None:
    """A reproducible tar.gz: sorted names, 0:0, fixed modes, fixed mtimes, gzip mtime 0."""
    with (
        fsutil.replacing(archive, mode=0o644) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in [stage, *sorted(stage.rglob("*"))]:
            rel = path.relative_to(stage).as_posix()
            info = tarfile.TarInfo(name if rel == "." else f"{name}/{rel}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                executable = path.stat().st_mode & 0o100
                info.size, info.mode = path.stat().st_size, 0o755 if executable else 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
