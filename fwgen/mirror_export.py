"""`fwgen mirror BOARD -o DIR`: every source of a board's builds, as a mirror directory.

The export runs Buildroot's own `make source` through the same rendered defconfig a build
uses (one per kernel variant), so the list of files is Buildroot's, not a guess: every file
it downloads has passed Buildroot's hash check, and fwgen's own tarballs pass fwgen's. The
layout is described in fwgen.mirrors. The directory appears by one rename when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwgen import __version__, brmake, brprepare, brtree, defconfig, fsutil, layout, paths, sources
from fwgen.board import Board, Download
from fwgen.errors import FwgenError
from fwgen.log import log
from fwgen.mirrors import INDEX, INDEX_FORMAT, SUMS, Needed, needed_files


@dataclass(frozen=True)
class Exported:
    out: Path
    files: int
    size: int
    variants: tuple[str, ...]


def export(
    board: Board,
    variant_names: Sequence[str],
    out: Path,
    *,
    buildroot_src: Path | None = None,
    mirror_urls: Sequence[str] = (),
    offline: bool = False,
) -> Exported:
    """Gather every source of the board's builds (one per kernel variant) into `out`."""
    out = Path(out).absolute()
    _check_target(out)
    for name in variant_names:
        board.kernel(name)
    downloads: list[Download] = [board.kernel(n) for n in variant_names]
    if buildroot_src is None:
        downloads.insert(0, board.buildroot)
    fetched = sources.fetch(downloads, mirrors=mirror_urls, offline=offline)
    own = dict(zip([d.file for d in downloads], fetched, strict=True))
    tree = brtree.buildroot_tree(board, own.get(board.buildroot.file), buildroot_src)
    dl_dir = defconfig.buildroot_dl_dir()
    needed: dict[str, Needed] = {}
    for name in variant_names:
        variant = board.kernel(name)
        brtree.place_kernel_tarball(own[variant.file], dl_dir)
        for item in _make_source(board, name, tree, mirror_urls, offline=offline):
            needed.setdefault(item.rel, item)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files: dict[str, dict[str, Any]] = {}
        for item in needed.values():
            _place(dl_dir / item.rel, staging / item.rel)
            entry = files.setdefault(item.rel, {"packages": []})
            entry["packages"].append(item.package)
        for file, path in own.items():
            _place(path, staging / file)
            files.setdefault(file, {"packages": ["fwgen"]})
        size = _write_index(staging, board, variant_names, files, buildroot_src is not None)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(out, len(files), size, tuple(variant_names))


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FwgenError(f"{out} exists and is not a directory", "choose another -o DIR")
    if out.is_dir() and any(out.iterdir()) and not (out / INDEX).is_file():
        raise FwgenError(
            f"{out} is not empty and is not a mirror fwgen exported (no {INDEX})",
            "give a new or empty directory, or an earlier fwgen mirror to refresh",
        )


def _make_source(
    board: Board, variant_name: str, tree: Path, mirror_urls: Sequence[str], *, offline: bool
) -> list[Needed]:
    """`make source` for one kernel variant's configuration; the files it needed."""
    work_root = paths.cache_dir() / "mirror-work"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{board.name}-{variant_name}-", dir=work_root) as o:
        output = Path(o)
        locations = defconfig.Locations.for_output(output)
        site = brprepare.primary_site(mirror_urls)
        text = defconfig.render(
            board,
            variant_name,
            locations,
            primary_site=site,
            primary_site_only=bool(site) and sources.is_offline(offline),
        )
        build = layout.BuildrootBuild(output)
        defconfig.write_if_changed(build.defconfig, text)
        defconfig.write_global_patch_dir(locations.patch_dir, board, variant_name)
        make = brmake.Make(tree, output)
        steps_log = build.steps_log
        make.run(
            ["defconfig"],
            steps_log,
            what="make defconfig",
            args=[f"BR2_EXTERNAL={paths.br2_external_dir()}", f"BR2_DEFCONFIG={build.defconfig}"],
        )
        info = make.show_info(steps_log)
        needed = needed_files(info)
        log_path = _log_path(board, variant_name)
        log.info(
            "kernel %s: Buildroot's make source, %d files; log: %s",
            variant_name,
            len(needed),
            log_path,
        )
        progress = brmake.Progress.for_files(
            {item.package: locations.dl_dir / item.rel for item in needed}, output
        )
        make.build(log_path, progress, targets=["source"])
    return needed


def _log_path(board: Board, variant_name: str) -> Path:
    path = paths.cache_dir() / "mirror-logs" / f"{board.name}-{variant_name}-source.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def _place(source: Path, target: Path) -> None:
    """Hard-link (else copy) a verified file into the staging tree."""
    if not source.is_file():
        raise FwgenError(
            f"{source} is missing after Buildroot's make source",
            "run the same command again; the download directory may have been cleaned meanwhile",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_index(
    staging: Path,
    board: Board,
    variant_names: Sequence[str],
    files: dict[str, dict[str, Any]],
    without_buildroot: bool,
) -> int:
    size = 0
    sums = []
    for rel in sorted(files):
        path = staging / rel
        digest = fsutil.sha256_file(path)
        files[rel]["sha256"] = digest
        files[rel]["size"] = path.stat().st_size
        size += files[rel]["size"]
        sums.append(f"{digest}  {rel}\n")
    fsutil.write_atomic(staging / SUMS, "".join(sums), mode=0o644)
    index = {
        "format": INDEX_FORMAT,
        "fwgen_version": __version__,
        "board": board.name,
        "buildroot": board.buildroot.version,
        "kernels": {n: board.kernel(n).version for n in variant_names},
        "buildroot_tarball_included": not without_buildroot,
        "files": {rel: files[rel] for rel in sorted(files)},
    }
    fsutil.write_atomic(staging / INDEX, json.dumps(index, indent=2) + "\n", mode=0o644)
    fsutil.write_atomic(staging / "README.txt", _readme(board, variant_names), mode=0o644)
    return size


def _readme(board: Board, variant_names: Sequence[str]) -> str:
    kernels = ", ".join(variant_names)
    return f"""Source mirror for fwgen board {board.name} (kernels {kernels}), Buildroot \
{board.buildroot.version}, exported by fwgen {__version__}.

Check it:   sha256sum -c SHA256SUMS
Serve it:   python3 -m http.server 8000 --directory .   (or any web server, or no server:
            a file:///path/to/this/dir URL works too)
Build with no other network access:
  fwgen build {board.name} --kernel {variant_names[0]} --mirror http://HOST:8000/ --offline

Layout: Buildroot's download-directory layout (<package>/<file>, which Buildroot tries under
BR2_PRIMARY_SITE), plus fwgen's own pinned tarballs at the top. {INDEX} says which package
needs which file.
"""


def _replace(staging: Path, out: Path) -> None:
    """Put the new mirror in place of `out` with renames; an older one is removed last."""
    os.chmod(staging, 0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)
