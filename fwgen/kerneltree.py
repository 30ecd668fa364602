"""The patched kernel source tree of a kernel-only build: the pristine source + the board's
patch series + Buildroot's host fixups, made afresh (`prepare`) or brought to another series in
place (`update`).

`update` is what makes an edit of a patch cheap: Kbuild decides what to recompile from file
mtimes, so the kept tree must end up exactly as `prepare` would make it while every file whose
content stays the same keeps its mtime. It prepares the new tree next to the kept one (hard
links, seconds) and then rewrites, in the kept tree, only the files that differ: a file shared
with the new tree (same inode, a link to the pristine source) is equal by construction, any
other is compared byte for byte. Rewritten files are new files with the current time, so
whatever depends on them is rebuilt (also when the new content is the pristine file's, whose
own mtime is years old); files the new series does not have are removed (Kbuild's dependency
files name them in rules of their own, so their dependents are rebuilt too).
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import stat
import subprocess
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


def update(pristine: Path, dest: Path, patch_dir: Path) -> list[str]:
    """Make `dest`, a tree `prepare` made from `pristine` with any series, equal to pristine +
    the series in `patch_dir` + host fixups, rewriting only the files that differ. Returns
    their paths relative to the tree (rewritten, added or removed), sorted.

    A series that does not apply raises before `dest` is touched. An interrupted update
    leaves a tree that is neither; the caller must not record it as either (kernel.py removes
    its state first, so the next build starts afresh)."""
    scratch = dest.with_name(dest.name + ".next")
    try:
        prepare(pristine, scratch, patch_dir)
        return _sync(scratch, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _entries(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (kind: d, l or f, inode) for everything under `root`."""
    found: dict[str, tuple[str, int]] = {}
    for rel, entry in fsutil.scan(root):
        if entry.is_symlink():
            kind = "l"
        elif entry.is_dir(follow_symlinks=False):
            kind = "d"
        else:
            kind = "f"
        found[rel] = (kind, entry.inode())
    return found


def _same_file(
    new: Path, new_entry: tuple[str, int], old: Path, old_entry: tuple[str, int]
) -> bool:
    kind, inode = new_entry
    if kind != old_entry[0]:
        return False
    if kind == "l":
        return os.readlink(new) == os.readlink(old)
    if inode == old_entry[1]:  # both trees are on one file system: the same file
        return True
    new_st, old_st = new.stat(), old.stat()
    return (
        new_st.st_size == old_st.st_size
        and stat.S_IMODE(new_st.st_mode) == stat.S_IMODE(old_st.st_mode)
        and filecmp.cmp(new, old, shallow=False)
    )


def _install(source: Path, kind: str, target: Path) -> None:
    """A new file at `target` (new inode, current mtime) with `source`'s content and mode."""
    if kind == "l":
        with fsutil.replacing(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(os.readlink(source))
        return
    with fsutil.replacing(target, mode=stat.S_IMODE(source.stat().st_mode)) as tmp:
        shutil.copyfile(source, tmp)


def _sync(new: Path, dest: Path) -> list[str]:
    """Make the tree `dest` equal to the tree `new`, touching only what differs."""
    new_entries, old_entries = _entries(new), _entries(dest)
    changed: list[str] = []
    # Children sort after their parents: removing in reverse order empties a folder first.
    for rel in sorted(old_entries.keys() - new_entries.keys(), reverse=True):
        path = dest / rel
        if old_entries[rel][0] == "d":
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
            changed.append(rel)
    for rel in sorted(new_entries):
        kind = new_entries[rel][0]
        old = old_entries.get(rel)
        target = dest / rel
        if old is not None and old[0] == "d" and kind != "d":
            shutil.rmtree(target)
            old = None
        if kind == "d":
            if old is not None and old[0] != "d":
                target.unlink()
            target.mkdir(exist_ok=True)
            continue
        if old is not None and _same_file(new / rel, new_entries[rel], target, old):
            continue
        _install(new / rel, kind, target)
        changed.append(rel)
    return sorted(changed)


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
