"""Release bundles: tested images, checksums, manifest, licences, SBOM and a README.

`make_release` turns a verified, smoke-tested images directory into `<out>/<name>/` and
`<out>/<name>.tar.gz`, where name is `<board>-<kernel variant>-<version>`. The same inputs give
byte-identical archives: sorted entries, owner 0:0, fixed modes, mtimes from SOURCE_DATE_EPOCH,
gzip and xz without timestamps. `verify_release` checks a received directory or archive.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fwgen import __version__, brmake, fsutil, images, layout, paths, smoke
from fwgen.board import Board
from fwgen.errors import FwgenError
from fwgen.flash import BMAP, IMAGE, bmap_ranges
from fwgen.log import log

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
SBOM = "sbom.cdx.json"
README = "README.txt"
DEFAULT_EPOCH = 315532800  # 1980-01-01, when neither SOURCE_DATE_EPOCH nor the manifest says
COMPRESS_FROM = 1 << 20  # files at least this large are xz-compressed ...
ALREADY_COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4")  # ... unless they already are
NOT_COMPRESSED = ("zImage", "Image", "uImage")  # self-extracting kernels
CYCLONEDX_SPEC = "1.6"
SPDX_SCHEMA_NAME = f"spdx-{CYCLONEDX_SPEC}.schema.json"
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


def source_date_epoch(manifest: dict[str, Any]) -> int:
    text = os.environ.get("SOURCE_DATE_EPOCH") or str(
        manifest.get("source_date_epoch", DEFAULT_EPOCH)
    )
    if not text.isdigit():
        raise FwgenError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds")
    return int(text)


def check_images(directory: Path, board: Board) -> dict[str, Any]:
    """The manifest of `directory` once its files match it; FwgenError naming what differs."""
    problems = images.verify(directory)
    if problems:
        raise FwgenError(
            f"{directory} does not match its {images.MANIFEST}/{images.SUMS}:\n  "
            + "\n  ".join(problems),
            "rebuild (fwgen build BOARD), or release the images that were built and tested",
        )
    manifest = images.load_manifest(directory)
    if manifest.get("board") not in (None, board.name):
        raise FwgenError(f"{directory} holds images for board '{manifest['board']}'")
    return manifest


def smoke_verdict(directory: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the smoke record, '') when it passed for exactly these images, else (record, why not)."""
    record = smoke.load_result(directory)
    where = smoke.smoke_dir(directory) / smoke.RESULT
    if record is None:
        return None, f"no smoke result ({where} is missing): fwgen smoke has not been run"
    if record.get("images") != manifest.get("images"):
        return record, f"{where} is for other images (their sha256s differ): smoke them again"
    if not record.get("passed"):
        failed = [n for n, s in sorted((record.get("checks") or {}).items()) if s != "passed"]
        return record, f"the last smoke run failed ({', '.join(failed) or 'no checks ran'})"
    return record, ""


def kernel_config(directory: Path, manifest: dict[str, Any]) -> Path | None:
    """The build's kernel .config, when it is still there and matches the manifest's sha256."""
    kernel = manifest.get("kernel") or {}
    want = kernel.get("config_sha256")
    output = directory.resolve().parent
    for candidate in (
        layout.KernelOnlyBuild(output).kernel_config,
        layout.BuildrootBuild(output).kernel_tree(str(kernel.get("version", ""))) / ".config",
    ):
        if candidate.is_file() and (want is None or fsutil.sha256_file(candidate) == want):
            return candidate
    return None


def patch_files(board: Board, manifest: dict[str, Any]) -> list[Path]:
    """The recipe's patch files whose sha256s match the manifest's series."""
    kernel = manifest.get("kernel") or {}
    series = kernel.get("series") or {}
    try:
        patches_dir = board.kernel(str(kernel.get("variant") or board.default_kernel)).patches_dir()
    except FwgenError:
        return []
    return [
        patches_dir / name
        for name, digest in sorted(series.items())
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


def _copy_tree(source: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] in skip or path.is_symlink():
            continue
        if path.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)


def buildroot_output(directory: Path, manifest: dict[str, Any]) -> Path | None:
    """The Buildroot output directory the images came from (it holds Buildroot's Makefile)."""
    if manifest.get("build") != "buildroot":
        return None
    output = directory.resolve().parent
    return output if (output / "Makefile").is_file() else None


def buildroot_tree(output: Path) -> Path | None:
    """The Buildroot source tree named in the output directory's generated Makefile."""
    match = re.search(r"^MAKEARGS\s*:=\s*-C\s+(\S+)", (output / "Makefile").read_text(), re.M)
    return Path(match.group(1)) if match else None


def _make(output: Path, *targets: str, log_file: Path) -> str:
    argv = ["make", "--no-print-directory", "-s", "-C", str(output), *targets]
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=brmake.make_env()
    )
    with log_file.open("a") as f:
        f.write(f"$ {shlex.join(argv)}\n{result.stderr}\n")
    if result.returncode != 0:
        raise FwgenError(
            f"make {' '.join(targets)} in {output} failed (exit status {result.returncode}):\n"
            + "\n".join(result.stderr.splitlines()[-20:]),
            f"see {log_file}; the Buildroot build directory must still be complete",
        )
    return result.stdout


def add_legal_info(stage: Path, output: Path, log_file: Path) -> None:
    """Buildroot's `make legal-info`: manifests and licence texts (sources stay in the build)."""
    legal = output / "legal-info"
    if not (legal / "manifest.csv").is_file():
        log.info("running make legal-info in %s", output)
        _make(output, "legal-info", log_file=log_file)
    _copy_tree(legal, stage / "legal-info", skip=("sources", "host-sources"))


def buildroot_sbom(output: Path, spdx_schema: Path | None, log_file: Path) -> tuple[bytes, str]:
    """Buildroot's own utils/generate-cyclonedx fed by `make show-info`, run offline.

    The script reads the SPDX licence list from $BR2_DL_DIR/cyclonedx/<schema>, downloading it
    when absent; fwgen points BR2_DL_DIR at a temporary directory holding the given schema (or,
    without one, an empty licence list, so licences are named but not matched to SPDX ids).
    """
    tree = buildroot_tree(output)
    script = tree / "utils" / "generate-cyclonedx" if tree else None
    if script is None or not script.is_file():
        raise FwgenError(
            f"cannot find Buildroot's utils/generate-cyclonedx for {output}",
            "the Buildroot tree the build used must still be there",
        )
    info = _make(output, "show-info", log_file=log_file)
    with tempfile.TemporaryDirectory(prefix="fwgen-cyclonedx-") as tmp:
        schema_dir = Path(tmp) / "cyclonedx"
        schema_dir.mkdir()
        if spdx_schema is not None:
            shutil.copyfile(spdx_schema, schema_dir / SPDX_SCHEMA_NAME)
            note = f"SPDX licence ids from {spdx_schema.name}"
        else:
            (schema_dir / SPDX_SCHEMA_NAME).write_text('{"enum": []}\n')
            note = "no SPDX schema given: licences named, not matched to SPDX ids"
        result = subprocess.run(
            [sys.executable, str(script)],
            input=info,
            capture_output=True,
            text=True,
            env={**os.environ, "BR2_DL_DIR": tmp},
            check=False,
        )
    if result.returncode != 0:
        raise FwgenError(
            f"{script} failed (exit status {result.returncode}): {result.stderr.strip()[-800:]}"
        )
    return (json.dumps(json.loads(result.stdout), indent=2, sort_keys=True) + "\n").encode(), note


def _component(kind: str, name: str, version: str, digest: str | None, **extra: Any) -> dict:
    component: dict[str, Any] = {
        "type": kind,
        "bom-ref": f"{name}@{version}" if version else name,
        "name": name,
    }
    if version:
        component["version"] = version
    if digest:
        component["hashes"] = [{"alg": "SHA-256", "content": digest}]
    component.update(extra)
    return component


def _gpl2() -> dict[str, Any]:
    return {"licenses": [{"license": {"id": "GPL-2.0-only"}}]}


def source_words(source: dict[str, Any]) -> str:
    """What the kernel was built from, in words (from the manifest's kernel.source)."""
    if source.get("kind") == "tree" or "tree" in source:
        words = f"the source tree '{source.get('tree', '?')}'"
        if source.get("version"):
            words += f" (linux {source['version']})"
        git = source.get("git") or {}
        if git.get("commit"):
            words += f", git commit {git['commit']}" + (" with changes" if git.get("dirty") else "")
        if source.get("content_sha256"):
            words += f", sha256 over its files {source['content_sha256']}"
        return words
    tarball = source.get("tarball") or source.get("file")
    if tarball:
        return f"{tarball} (sha256 {source.get('sha256', '?')})"
    return "an unrecorded kernel source"


def kernel_only_sbom(name: str, manifest: dict[str, Any], epoch: int) -> bytes:
    """A minimal CycloneDX SBOM written from the manifest (kernel-only builds)."""
    kernel = manifest.get("kernel") or {}
    source = kernel.get("source") or {}
    patches = [
        _component("file", patch, "", digest, description="kernel patch")
        for patch, digest in sorted((kernel.get("series") or {}).items())
    ]
    components = [
        _component(
            "firmware",
            "linux",
            str(kernel.get("version", "")),
            source.get("sha256"),
            description=f"Linux kernel {kernel.get('release', '')} built from "
            f"{source_words(source)} with the patches below",
            **_gpl2(),
            components=patches,
        )
    ]
    # "modules" (a list); manifests made before the second module have one "module".
    listed = manifest.get("modules") or [manifest.get("module") or {}]
    for module in (m for m in listed if isinstance(m, dict) and m):
        components.append(
            _component(
                "library",
                str(module.get("name", "module")),
                "",
                module.get("sha256"),
                description="out-of-tree kernel module built with the kernel",
                **_gpl2(),
            )
        )
    rootfs = manifest.get("rootfs")
    if isinstance(rootfs, dict):
        digest = rootfs.get("sha256") or rootfs.get("content")
        components.append(
            _component(
                "application",
                "busybox-rootfs",
                "",
                digest if isinstance(digest, str) and len(digest) == 64 else None,
                description="busybox-based initramfs root filesystem (with fwgen's overlays "
                "and the kernel modules)",
                **_gpl2(),
            )
        )
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": CYCLONEDX_SPEC,
        "version": 1,
        "serialNumber": "urn:uuid:" + _uuid_from(name, manifest),
        "metadata": {
            "timestamp": _iso(epoch),
            "tools": {
                "components": [{"type": "application", "name": "fwgen", "version": __version__}]
            },
            "component": {"type": "firmware", "bom-ref": name, "name": name},
        },
        "components": components,
        "dependencies": [{"ref": name, "dependsOn": [c["bom-ref"] for c in components]}],
    }
    return (json.dumps(bom, indent=2, sort_keys=True) + "\n").encode()


def _uuid_from(name: str, manifest: dict[str, Any]) -> str:
    """A stable UUID (v4 layout) from the release name and manifest: reproducible SBOMs."""
    digest = hashlib.sha256((name + json.dumps(manifest, sort_keys=True)).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def readme(
    name: str, board: Board, manifest: dict[str, Any], files: list[str], notes: list[str]
) -> str:
    """README.txt: every command in it ("  $ ...") runs as shown from inside the release
    directory, also on a read-only copy of it (tested)."""
    kernel = manifest.get("kernel") or {}
    variant = board.kernel(str(kernel.get("variant") or board.default_kernel))
    dtb = f"{kernel.get('device_tree') or variant.device_tree}.dtb"
    kernel_image = board.buildroot.kernel_image
    card = f"{IMAGE}.xz" in files
    arg = board.name  # the receiver names the board; see the note below for other boards
    builtin = board.source.resolve().is_relative_to(paths.boards_dir().resolve())
    lines = [
        f"{name}",
        "=" * len(name),
        "",
        f"Firmware for board '{board.name}': Linux {kernel.get('release') or kernel.get('version')}"
        f" ({manifest.get('build', 'unknown')} build), made by fwgen {__version__}.",
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
    manifest = check_images(directory, board)
    record, untested = smoke_verdict(directory, manifest)
    if untested and not allow_untested:
        raise FwgenError(
            f"refusing to release untested images: {untested}",
            f"run: fwgen smoke {board.argument} --images {directory} (or pass --allow-untested, "
            "which the release manifest records)",
        )
    version = check_version(version or default_version())
    variant = str((manifest.get("kernel") or {}).get("variant") or board.default_kernel)
    name = f"{board.name}-{variant}-{version}"
    epoch = source_date_epoch(manifest)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        extra = _stage(stage, board, directory, manifest, name, version, epoch, spdx_schema)
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
    manifest: dict[str, Any],
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
    config = kernel_config(directory, manifest)
    if config:
        shutil.copyfile(config, stage / "kernel.config")
    patches = patch_files(board, manifest)
    if patches:
        (stage / "patches").mkdir()
        for patch in patches:
            shutil.copyfile(patch, stage / "patches" / patch.name)
    notes: list[str] = []
    output = buildroot_output(directory, manifest)
    if manifest.get("build") == "buildroot" and output is None:
        raise FwgenError(
            f"{directory} came from a Buildroot build, but its output directory "
            f"({directory.resolve().parent}) has no Buildroot Makefile: the licence information "
            "(make legal-info) and the SBOM (make show-info) come from there",
            "release from the images/ folder inside the Buildroot output directory",
        )
    log_file = stage.parent / f"{name}.log"
    if output is not None:
        add_legal_info(stage, output, log_file)
        sbom, sbom_note = buildroot_sbom(output, spdx_schema, log_file)
        sbom_how = f"Buildroot utils/generate-cyclonedx from make show-info ({sbom_note})"
        notes += [
            "  legal-info/ is Buildroot's 'make legal-info' output: manifest.csv lists every",
            "  target package with its licence; licenses/ holds the licence texts. The package",
            "  sources (legal-info/sources) are not bundled; they stay with the build.",
        ]
    else:
        sbom = kernel_only_sbom(name, manifest, epoch)
        sbom_how = "written by fwgen from the manifest (kernel-only build)"
        source = (manifest.get("kernel") or {}).get("source") or {}
        notes += [
            "  Linux kernel and its patches: GPL-2.0-only (kernel COPYING; this is a kernel-only",
            "  build, so no Buildroot legal-info exists). The kernel modules: GPL-2.0-only.",
            "  The busybox-based initramfs: busybox is GPL-2.0-only.",
            *textwrap.wrap(
                f"Corresponding sources: the kernel was built from {source_words(source)} "
                "(manifest.json, kernel.source), plus patches/."
                + (
                    " That tree is not a published tarball: keep it with this release."
                    if source.get("kind") == "tree" or "tree" in source
                    else ""
                ),
                88,
                initial_indent="  ",
                subsequent_indent="  ",
                break_long_words=False,
            ),
        ]
    (stage / SBOM).write_bytes(sbom)
    notes += [f"  SBOM ({SBOM}, CycloneDX {CYCLONEDX_SPEC}):", f"  {sbom_how}."]
    listed = sorted(
        {*(p.name + ("/" if p.is_dir() else "") for p in stage.iterdir())}
        | {
            README,
            MANIFEST,
            SUMS,
        }
    )
    (stage / README).write_text(readme(name, board, manifest, listed, notes))
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
            "sbom": {"file": SBOM, "how": sbom_how},
            "licences": "legal-info/" if output is not None else README,
        },
        "fwgen": {
            "version": __version__,
            "git_revision": git_rev,
            "git_dirty": bool(dirty) if git_rev else None,
        },
        "images": manifest,
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


# --- verifying --------------------------------------------------------------------------------


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
        release, built = record["release"], record["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{MANIFEST}: not a release manifest ({e})"]
    for rel, digest in sorted((release.get("sha256") or {}).items()):
        if listed.get(rel) != digest:
            problems.append(f"{rel}: {MANIFEST} and {SUMS} disagree")
    for original, digest in sorted((built.get("images") or {}).items()):
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
