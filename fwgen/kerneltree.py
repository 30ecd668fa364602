"""The patched kernel source tree: the pristine source + the board's patch series +
Buildroot's host fixups, made afresh for a kernel-only build (`prepare`), or brought to another
series in place (`update`), in a kernel-only build's kept tree or in Buildroot's kernel build
directory.

`update` is what makes an edit of a patch cheap: Kbuild decides what to recompile from file
mtimes, so the kept tree must end up exactly as `prepare` would make it while every file whose
content stays the same keeps its mtime. Only the files that can differ are redone: those the
new series names, plus those the kept tree's own series made differ from the pristine source.
The latter are found by inode where the kept tree hard-links the pristine source (what
`prepare` makes: any file that is not a link is one a patch, a host fixup or a hand wrote), and
from the old series' own patches where it does not (Buildroot's extracted tree). Those files
are taken from the pristine source into a small scratch tree, the new series and the host
fixups are applied there, and each is compared with the kept tree's: only a differing one is
rewritten, as a new file with the current time (also when its new content is the pristine
file's, whose own mtime is years old), so whatever depends on it is rebuilt; a file the new
series does not have is removed.
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from fwgen import fsutil, patches
from fwgen.log import log

# Bump when apply_host_fixups changes what it does to a tree: trees made before are redone.
HOST_FIXUPS_VERSION = 1


def prepare(pristine: Path, dest: Path, patch_dir: Path) -> None:
    """dest = pristine + the series + host fixups. Hard links where possible (fast, and safe:
    GNU patch and the fixups replace files instead of writing into them)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    linked = subprocess.run(["cp", "-al", str(pristine), str(dest)], capture_output=True)
    if linked.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["cp", "-a", str(pristine), str(dest)], check=True)
    results = patches.apply_series(dest, patch_dir)
    for result in results:
        log.info("  applied %s: %s", result.patch.name, result.summary())
    for fixed in apply_host_fixups(dest):
        log.info("  host fixup (as Buildroot's linux.mk): %s", fixed)


def update(
    pristine: Path,
    dest: Path,
    patch_dir: Path,
    *,
    old_series: Path | None = None,
    before_change: Callable[[], None] = lambda: None,
) -> list[str]:
    """Make `dest`, a tree made from `pristine` with some series, equal to pristine + the
    series in `patch_dir` + host fixups, rewriting only the files that differ. Returns their
    paths relative to the tree (rewritten, added or removed), sorted.

    `old_series`: the patch directory `dest` was made with, for a tree that does not share
    inodes with `pristine` (without it, `dest` is taken to be what `prepare` made, and the files
    that differ from the pristine source are found by inode). Files outside the series and
    the host fixups are then trusted as they are, as Buildroot trusts its build directories.

    A series that does not apply raises before `dest` is touched; `before_change` runs once
    it is known to apply, before the first file of `dest` changes. An interrupted update leaves
    a tree that is neither; the caller must not record it as either (kernel.py removes its
    state first, so the next build starts afresh; buildroot.py marks its own in
    `before_change`)."""
    redo = set().union(*(patches.touched(p) for p in patches.series(patch_dir)))
    if old_series is not None:
        redo.update(*(patches.touched(p) for p in patches.series(old_series)))
    else:
        redo.update(_diverged(pristine, dest))
    with tempfile.TemporaryDirectory(prefix="fwgen-series-") as scratch:
        new = _patched(pristine, redo, patch_dir, Path(scratch) / "new")
        for result in new.results:
            log.info("  applied %s: %s", result.patch.name, result.summary())
        # Without the old series, the kept tree is what the new one is compared with. With it,
        # the old series' own result is: a file the kept tree's build rewrote in place (an
        # in-tree build regenerates a few *_shipped parsers) stays as it is if the change
        # leaves it alone, and so do modes another extraction of the tarball gave.
        before = (
            dest
            if old_series is None
            else _patched(pristine, redo, old_series, Path(scratch) / "old").tree
        )
        before_change()
        return _sync(new.tree, before, dest, sorted(redo), pristine)


@dataclasses.dataclass(frozen=True)
class _Patched:
    tree: Path
    results: list[patches.PatchResult]


def _patched(pristine: Path, rels: set[str], patch_dir: Path, work: Path) -> _Patched:
    """`rels` of pristine + the series in `patch_dir` + host fixups, in `work`."""
    work.mkdir()
    for rel in rels:
        _copy_entry(pristine / rel, work / rel)
    results = patches.apply_series(work, patch_dir)
    apply_host_fixups(work)
    return _Patched(work, results)


def _diverged(pristine: Path, dest: Path) -> set[str]:
    """Files and symlinks of either tree that are not the same file in both (a hard link)."""

    def files(root: Path) -> dict[str, int]:
        return {
            rel: entry.inode()
            for rel, entry in fsutil.scan(root)
            if not entry.is_dir(follow_symlinks=False)
        }

    ours, theirs = files(dest), files(pristine)
    return {rel for rel in ours.keys() | theirs.keys() if ours.get(rel) != theirs.get(rel)}


def _copy_entry(source: Path, target: Path) -> None:
    if not os.path.lexists(source) or source.is_dir() and not source.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
    else:
        shutil.copy2(source, target)


def _same_entry(new: Path, old: Path) -> bool:
    new_st, old_st = new.lstat(), old.lstat()
    if stat.S_IFMT(new_st.st_mode) != stat.S_IFMT(old_st.st_mode):
        return False
    if stat.S_ISLNK(new_st.st_mode):
        return os.readlink(new) == os.readlink(old)
    return (
        new_st.st_size == old_st.st_size
        and stat.S_IMODE(new_st.st_mode) == stat.S_IMODE(old_st.st_mode)
        and filecmp.cmp(new, old, shallow=False)
    )


def _install(source: Path, target: Path) -> None:
    """A new file at `target` (new inode, current mtime) with `source`'s content and mode."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        with fsutil.replacing(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(os.readlink(source))
        return
    with fsutil.replacing(target, mode=stat.S_IMODE(source.stat().st_mode)) as tmp:
        shutil.copyfile(source, tmp)


def _sync(new: Path, before: Path, dest: Path, rels: list[str], pristine: Path) -> list[str]:
    """For each of `rels` that differs between `before` and `new`, make `dest`'s what it is in
    `new` (`before` may be `dest` itself)."""
    changed = []
    for rel in rels:
        source, target = new / rel, dest / rel
        wanted, there = os.path.lexists(source), os.path.lexists(before / rel)
        if wanted == there and (not wanted or _same_entry(source, before / rel)):
            continue
        if wanted:
            _install(source, target)
        elif target.is_symlink() or target.is_file():
            target.unlink()
            _remove_empty_parents(target.parent, dest, pristine)
        changed.append(rel)
    return changed


def _remove_empty_parents(folder: Path, dest: Path, pristine: Path) -> None:
    """Folders only a series made go with their last file, as a fresh tree would not have them."""
    while folder != dest and not (pristine / folder.relative_to(dest)).is_dir():
        try:
            folder.rmdir()
        except OSError:  # not empty
            return
        folder = folder.parent


def apply_host_fixups(tree: Path) -> list[str]:
    """What Buildroot's linux.mk does to every kernel after patching (LINUX_DROP_YYLLOC and
    LINUX_ADD_DTC_LOCATIONS), so a kernel-only build compiles what a Buildroot build compiles.
    Files are rewritten (new inode), never edited in place: the tree may share inodes with
    the pristine cache."""
    changed = []
    found = subprocess.run(
        ["grep", "-Z", "-l", "-r", "-E", "^YYLTYPE yylloc;$", str(tree)],
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, found):
        path = Path(os.fsdecode(name))
        _rewrite(path, _drop_yylloc(path))
        changed.append(str(path.relative_to(tree)))
    parser = tree / "scripts" / "dtc" / "dtc-parser.y"
    if parser.exists():
        text = parser.read_text(errors="surrogateescape")
        if not re.search(r"^%locations$", text, re.M):
            _rewrite(parser, re.sub(r"^%\{$", "%locations\n%{", text, flags=re.M))
            changed.append(str(parser.relative_to(tree)))
    return changed


def _drop_yylloc(path: Path) -> str:
    lines = path.read_text(errors="surrogateescape").splitlines(keepends=True)
    return "".join(line for line in lines if line.rstrip("\n") != "YYLTYPE yylloc;")


def _rewrite(path: Path, text: str) -> None:
    # A new file (a new inode) with the old one's mode: the tree hard-links the pristine cache.
    with fsutil.replacing(path, mode=stat.S_IMODE(path.stat().st_mode)) as tmp:
        tmp.write_text(text, errors="surrogateescape")
