"""File names: the in-tree path of each file of a patch, from its --- and +++ names."""

from __future__ import annotations

import re
from pathlib import Path

from fwgen.patch_import.diff import FileDiff, Refused

_TREE_NAME_RE = re.compile(r"^linux([-_.].*)?$")
_SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9_.,+@=-]+(/[A-Za-z0-9_.,+@=-]+)*$")


def resolve_path(
    fd: FileDiff, strip_hint: int | None, tree: Path | None, repairs: list[str]
) -> None:
    fd.path = _in_tree_path(fd, strip_hint, tree)
    if not _SAFE_PATH_RE.match(fd.path) or ".." in fd.path.split("/"):
        raise Refused(fd.no, f"'{fd.path}': not a plain relative path inside the tree")
    shown = ", ".join(n for n in (fd.old_name, fd.new_name) if n is not None)
    if not {fd.old_name, fd.new_name} - {None} <= {f"a/{fd.path}", f"b/{fd.path}"}:
        repairs.append(f"file names {shown} -> a/{fd.path} b/{fd.path}")


def _components(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _in_tree_path(fd: FileDiff, strip_hint: int | None, tree: Path | None) -> str:
    old = _components(fd.old_name) if fd.old_name is not None else None
    new = _components(fd.new_name) if fd.new_name is not None else None
    if strip_hint is not None:
        return _stripped(fd, old, new, strip_hint)
    if old is not None and new is not None and old != new:
        common = _common_suffix(old, new)
        if not common:
            raise Refused(
                fd.no,
                f"'{fd.old_name}' and '{fd.new_name}' share no path: renames are not "
                "supported (give --strip N if the names only differ in their prefixes)",
            )
    else:
        side = new if new is not None else old
        assert side is not None
        common = side[1:]  # the -p1 convention: a/, b/ or the tree's directory
    if tree is not None and fd.old_name is not None:
        for i in range(len(common)):
            candidate = "/".join(common[i:])
            if (tree / candidate).is_file():
                return candidate
        raise Refused(
            fd.no,
            f"'{fd.old_name}': neither {'/'.join(common)} nor any shorter end of it is a "
            "file in the kernel tree",
        )
    while len(common) > 1 and _TREE_NAME_RE.match(common[0]):
        common = common[1:]
    if not common:
        raise Refused(fd.no, f"cannot tell the in-tree path of '{fd.label()}'")
    return "/".join(common)


def _stripped(fd: FileDiff, old: list[str] | None, new: list[str] | None, n: int) -> str:
    side = new if new is not None else old
    assert side is not None
    if n >= len(side):
        raise Refused(fd.no, f"--strip {n} leaves nothing of '{fd.label()}'")
    path = side[n:]
    other = old if new is not None else None
    if other is not None and other[-len(path) :] != path:
        raise Refused(fd.no, f"'{fd.old_name}' does not end with {'/'.join(path)}")
    return "/".join(path)


def _common_suffix(a: list[str], b: list[str]) -> list[str]:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]
