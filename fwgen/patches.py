"""Kernel patch series the way Buildroot applies them: order, dry-run check, apply.

Buildroot 2025.02 (support/scripts/apply-patches.sh) applies a patch directory in the order of
its `series` file if there is one, else its `*.patch` files in C (bytewise) sort order, each
with `patch -F0 -g0 -p1 --no-backup-if-mismatch -t -N`: no fuzz, so every context line must
match the tree exactly (an offset is fine). fwgen checks and applies series with the same
program and flags. (Importing patches from documents: fwgen.patch_import.)
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fwgen.errors import FwgenError

# apply-patches.sh's flags, in its order; fwgen adds only -d and -i.
BUILDROOT_PATCH_ARGS = ("-F0", "-g0", "-p1", "--no-backup-if-mismatch", "-t", "-N")

_PATCH_HINT = "install GNU patch (Debian: apt-get install patch)"


# --------------------------------------------------------------------------------------------
# The series


def series(patch_dir: Path) -> list[Path]:
    """The patches of `patch_dir`, in the order Buildroot applies them.

    A `series` file wins: lines starting with '#' are skipped, each other line's first
    space-separated field is split on blanks (so an empty or blank-led line names nothing),
    and every word must be an existing file. Without one, the `*.patch` files (no dot files)
    in C sort order. Like Buildroot, a name applied twice is refused.
    """
    patch_dir = Path(patch_dir)
    if not patch_dir.is_dir():
        raise FwgenError(
            f"{patch_dir}: no such patch directory",
            "create it, or fix the board recipe's 'patches' entry",
        )
    listed = patch_dir / "series"
    names = _series_words(listed) if listed.exists() else _globbed(patch_dir)
    return _checked_names(patch_dir, names, from_series=listed.exists())


def _series_words(listed: Path) -> list[str]:
    words: list[str] = []
    for line in listed.read_bytes().decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("#"):
            continue
        # `cut -d ' ' -f1`, then the shell's word splitting on space, tab and newline.
        first = line.split(" ", 1)[0]
        words.extend(w for w in re.split(r"[ \t\n]+", first) if w)
    return words


def _globbed(patch_dir: Path) -> list[str]:
    names = [
        entry.name
        for entry in os.scandir(patch_dir)
        if fnmatch.fnmatchcase(entry.name, "*.patch") and not entry.name.startswith(".")
    ]
    return sorted(names, key=os.fsencode)


def _checked_names(patch_dir: Path, names: list[str], *, from_series: bool) -> list[Path]:
    where = f"{patch_dir / 'series'}" if from_series else str(patch_dir)
    applied: list[str] = []
    result: list[Path] = []
    for name in names:
        if any(c in name for c in "*?["):
            raise FwgenError(
                f"{where}: '{name}' is a shell pattern; Buildroot would expand it",
                "list each patch by its file name",
            )
        path = patch_dir / name
        if path.is_dir():
            raise FwgenError(
                f"{path}: a directory in a patch series is not supported by fwgen",
                "put the patches directly in the series directory",
            )
        if not path.is_file():
            raise FwgenError(
                f"{where}: missing patch file '{name}'", "fix the series file or add the patch"
            )
        _refuse_duplicate(where, name, applied)
        applied.append(f"{patch_dir}/{name}")
        result.append(path)
    return result


def _refuse_duplicate(where: str, name: str, applied: list[str]) -> None:
    # apply-patches.sh: grep -E "/${patch}$" over the paths applied so far.
    try:
        pattern = re.compile("/" + name + "$")
    except re.error:
        return  # grep fails on it too, and Buildroot then goes on
    for earlier in applied:
        if pattern.search(earlier):
            raise FwgenError(
                f"{where}: duplicate patch name '{name}' (already applied: {earlier})",
                "Buildroot refuses a patch name twice: rename or drop one of them",
            )


# --------------------------------------------------------------------------------------------
# Checking and applying a series


@dataclass(frozen=True)
class HunkOffset:
    file: str
    hunk: int
    line: int
    offset: int


@dataclass(frozen=True)
class Reject:
    file: str  # the file the rejected hunks were meant for, relative to the tree
    text: str  # the .rej file's content


@dataclass(frozen=True)
class PatchResult:
    """What GNU patch did with one patch of a series ("not-run": an earlier one failed)."""

    patch: Path
    status: str  # "ok", "failed" or "not-run"
    output: str = ""
    offsets: tuple[HunkOffset, ...] = ()
    rejects: tuple[Reject, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        if self.status == "not-run":
            return "not checked (an earlier patch failed)"
        if self.status == "failed":
            return "FAILED"
        if not self.offsets:
            return "OK"
        if len(self.offsets) == 1:
            n = self.offsets[0].offset
            return f"OK (offset {n} line{'' if abs(n) == 1 else 's'})"
        parts = ", ".join(f"{o.file} hunk #{o.hunk}: {o.offset:+d}" for o in self.offsets)
        return f"OK (offsets: {parts})"

    def details(self) -> str:
        """GNU patch's messages and the rejected hunks, for a failed patch."""
        if self.status != "failed":
            return ""
        lines = [line for line in self.output.splitlines() if line.strip()]
        for reject in self.rejects:
            lines.append(f"rejected hunk(s) for {reject.file}:")
            lines.extend("  " + line for line in reject.text.splitlines())
        return "\n".join(lines)


def format_results(results: Iterable[PatchResult], patch_dir: Path) -> str:
    """One line per patch (name, verdict), failures followed by their details, indented."""
    out: list[str] = []
    for result in results:
        try:
            name = str(result.patch.relative_to(patch_dir))
        except ValueError:
            name = str(result.patch)
        out.append(f"  {name}: {result.summary()}")
        details = result.details()
        if details:
            out.append(textwrap.indent(details, "      ", lambda _line: True))
    return "\n".join(out)


def check_series(tree: Path, patch_dir: Path) -> list[PatchResult]:
    """Apply the series to a scratch copy of the files it touches; `tree` is not modified.

    Patches are applied one after the other, as Buildroot does, so each is checked on top of
    the previous ones. After the first failure the rest are reported "not-run".
    """
    patches = series(patch_dir)
    tree = existing_tree(tree)
    with tempfile.TemporaryDirectory(prefix="fwgen-patch-check-") as scratch:
        work = Path(scratch) / "tree"
        work.mkdir()
        _copy_files(tree, work, set().union(*(touched(p) for p in patches)))
        return _apply_each(work, patches)


def apply_series(tree: Path, patch_dir: Path) -> list[PatchResult]:
    """Apply the series to `tree` for real, after checking it; FwgenError if any fails.

    The check runs first on a scratch copy, so a series that does not apply leaves the tree
    untouched.
    """
    checked = check_series(tree, patch_dir)
    if not all(r.ok for r in checked):
        raise _series_failed(checked, tree, patch_dir, "nothing was applied")
    applied = _apply_each(Path(tree), series(patch_dir))
    if not all(r.ok for r in applied):
        raise _series_failed(applied, tree, patch_dir, "the tree is now partly patched")
    return applied


def _series_failed(
    results: list[PatchResult], tree: Path, patch_dir: Path, state: str
) -> FwgenError:
    failed = sum(1 for r in results if r.status == "failed")
    return FwgenError(
        f"{failed} of {len(results)} patches in {patch_dir} do not apply to {tree} "
        f"with patch -p1 -F0 ({state}):\n{format_results(results, patch_dir)}",
        "fix the patch (see the rejected hunk), or check that the tree is the pristine "
        "kernel version the series is for",
    )


def existing_tree(tree: Path) -> Path:
    tree = Path(tree)
    if not tree.is_dir():
        raise FwgenError(f"{tree}: not a directory", "give the top of a kernel source tree")
    return tree


def _apply_each(work: Path, patches: list[Path]) -> list[PatchResult]:
    results: list[PatchResult] = []
    for patch in patches:
        if results and not results[-1].ok:
            results.append(PatchResult(patch, "not-run"))
        else:
            results.append(run_patch(work, patch))
    return results


def run_patch(work: Path, patch: Path, *, dry_run: bool = False) -> PatchResult:
    """Run GNU patch with Buildroot's flags on `work` and collect what it reported."""
    args = [gnu_patch(), *BUILDROOT_PATCH_ARGS, "-d", str(work), "-i", str(patch.resolve())]
    if dry_run:
        args.append("--dry-run")
    proc = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode == 0:
        return PatchResult(patch, "ok", output, tuple(hunk_offsets(output)))
    rejects = tuple(_rejects(work, touched(patch)))
    return PatchResult(patch, "failed", output, tuple(hunk_offsets(output)), rejects)


@functools.cache
def gnu_patch() -> str:
    program = shutil.which("patch")
    if not program:
        raise FwgenError(
            "GNU patch is not installed (Buildroot applies patches with it)", _PATCH_HINT
        )
    version = subprocess.run(
        [program, "--version"], capture_output=True, text=True, check=False
    ).stdout
    if "GNU patch" not in version:
        raise FwgenError(f"{program} is not GNU patch", _PATCH_HINT)
    return program


_PATCHING_RE = re.compile(r"^patching file (.+)$")
_OFFSET_RE = re.compile(
    r"^Hunk #(\d+) succeeded at (\d+)(?: with fuzz \d+)? \(offset (-?\d+) lines?\)"
)


def hunk_offsets(output: str) -> Iterator[HunkOffset]:
    current = "?"
    for line in output.splitlines():
        m = _PATCHING_RE.match(line)
        if m:
            current = m.group(1).strip("'\"")
            continue
        m = _OFFSET_RE.match(line)
        if m:
            yield HunkOffset(current, int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _rejects(work: Path, touched: set[str]) -> Iterator[Reject]:
    for rel in sorted(touched):
        rej = work / (rel + ".rej")
        if rej.is_file():
            yield Reject(rel, rej.read_bytes().decode("utf-8", "replace"))


def touched(patch: Path) -> set[str]:
    """The tree-relative names (-p1) a patch file can create, change or remove: those of its
    ---/+++ lines, and of git's rename and copy lines (a pure rename has no ---/+++)."""
    names: set[str] = set()
    text = patch.read_bytes().decode("utf-8", "surrogateescape")
    for line in text.splitlines():
        if line.startswith(("--- ", "+++ ")):
            rel = _strip_p1(diff_header_name(line[4:]))
        elif line.startswith(_GIT_NAME_LINES):
            rel = _relative(diff_header_name(line.split(" ", 2)[2]))
        else:
            continue
        if rel:
            names.add(rel)
    return names


# git's extended header lines that name a file without the a/ or b/ prefix.
_GIT_NAME_LINES = ("rename from ", "rename to ", "copy from ", "copy to ")


def _strip_p1(name: str) -> str | None:
    if name == "/dev/null" or name.startswith("/"):
        return None
    return _relative("/".join([p for p in name.split("/") if p][1:]))


def _relative(name: str) -> str | None:
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _copy_files(tree: Path, dest: Path, rels: Iterable[str]) -> None:
    for rel in rels:
        src = tree / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)


def diff_header_name(rest: str) -> str:
    name = rest.split("\t", 1)[0]
    name = re.sub(r" +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?( [+-]\d{4})?$", "", name)
    name = name.rstrip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = _c_unquote(name[1:-1])
    return name


def _c_unquote(quoted: str) -> str:
    out = bytearray()
    escapes = {
        "n": b"\n",
        "t": b"\t",
        '"': b'"',
        "\\": b"\\",
        "a": b"\a",
        "b": b"\b",
        "f": b"\f",
        "r": b"\r",
        "v": b"\v",
    }
    i = 0
    while i < len(quoted):
        c = quoted[i]
        if c == "\\" and i + 1 < len(quoted):
            nxt = quoted[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", quoted[i + 1 : i + 4]):
                out.append(int(quoted[i + 1 : i + 4], 8))
                i += 4
                continue
            out += escapes.get(nxt, nxt.encode())
            i += 2
            continue
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")
