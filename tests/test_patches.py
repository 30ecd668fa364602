"""Patch series (Buildroot's order and flags), checks on kernel trees, and `fwgen patch import`.

Everything runs the real GNU patch (and git, for the seed comparison) on small trees written
by the tests; the kernel-tree tests use the linux61_src / linux40_src fixtures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import paths
from fwgen.board import load_board
from fwgen.cli import main
from fwgen.errors import FwgenError
from fwgen.patch_import import import_patch
from fwgen.patches import apply_series, check_series, series

DATA = Path(__file__).parent / "data"
SEED = DATA / "seed-mykthread.md"
SEED_FILES = ["init/main.c", "include/linux/sysctl.h", "kernel/sysctl.c"]
BUILDROOT_FLAGS = ["-F0", "-g0", "-p1", "--no-backup-if-mismatch", "-t", "-N"]

DEMO_C = """\
/* demo */
#include <stdio.h>

static int counter;

static void tick(void)
{
\tcounter++;
\tif (counter > 10)
\t\tcounter = 0;
}

static void tock(void)
{
\tcounter--;
\tif (counter > 10)
\t\tcounter = 0;
}

int main(void)
{
\ttick();
\treturn 0;
}
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def numbered(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))


def gnu_patch(tree: Path, patch: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["patch", *BUILDROOT_FLAGS, "-d", str(tree), "-i", str(patch)],
        capture_output=True,
        text=True,
        check=False,
    )


# A patch that changes "line 5" of numbered(12) in f.txt, and one on top of it.
P_LINE5 = """\
--- a/f.txt
+++ b/f.txt
@@ -2,7 +2,7 @@
 line 2
 line 3
 line 4
-line 5
+line five
 line 6
 line 7
 line 8
"""
P_ON_TOP = """\
--- a/f.txt
+++ b/f.txt
@@ -3,6 +3,7 @@
 line 3
 line 4
 line five
+line five and a half
 line 6
 line 7
 line 8
"""
P_BAD_CONTEXT = """\
--- a/f.txt
+++ b/f.txt
@@ -8,3 +8,4 @@
 line 8
 line NINE
+new
 line 10
"""


# --- series order -------------------------------------------------------------------------------


def test_series_is_patch_files_in_c_sort_order(tmp_path):
    for name in ["b.patch", "0010-c.patch", "0002-b.patch", "B.patch", "_x.patch", "0001-a.patch"]:
        (tmp_path / name).write_text("")
    for ignored in ["README", "x.diff", ".hidden.patch", "y.patch.orig"]:
        (tmp_path / ignored).write_text("")
    names = [p.name for p in series(tmp_path)]
    # bytewise: digits < upper case < '_' < lower case (a locale-aware sort would differ)
    assert names == [
        "0001-a.patch",
        "0002-b.patch",
        "0010-c.patch",
        "B.patch",
        "_x.patch",
        "b.patch",
    ]


def test_series_file_wins_with_comments_blank_lines_and_strip_field(tmp_path):
    for name in ["one.patch", "two.diff", "three", "unlisted.patch"]:
        (tmp_path / name).write_text("")
    (tmp_path / "series").write_text(
        "# order matters\n\nthree -p1\n  indented-lines-name-nothing.patch\ntwo.diff\none.patch\n"
    )
    assert [p.name for p in series(tmp_path)] == ["three", "two.diff", "one.patch"]


def test_series_refuses_what_buildroot_refuses(tmp_path):
    (tmp_path / "a.patch").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.patch").write_text("")
    (tmp_path / "series").write_text("a.patch\na.patch\n")
    with pytest.raises(FwgenError, match="duplicate patch name 'a.patch'"):
        series(tmp_path)
    (tmp_path / "series").write_text("sub/a.patch\na.patch\n")  # same name from another dir
    with pytest.raises(FwgenError, match="duplicate patch name"):
        series(tmp_path)
    (tmp_path / "series").write_text("a.patch\nmissing.patch\n")
    with pytest.raises(FwgenError, match="missing patch file 'missing.patch'"):
        series(tmp_path)
    (tmp_path / "series").write_text("*.patch\n")
    with pytest.raises(FwgenError, match="shell pattern"):
        series(tmp_path)
    with pytest.raises(FwgenError, match="no such patch directory"):
        series(tmp_path / "nope")


# --- check and apply ------------------------------------------------------------------------------


def test_check_reports_ok_offset_and_failure_with_rejected_hunk(tmp_path):
    tree = write_tree(tmp_path / "tree", {"f.txt": numbered(12)})
    shifted = write_tree(tmp_path / "shifted", {"f.txt": "extra\nextra\nextra\n" + numbered(12)})
    pdir = write_tree(tmp_path / "p", {"0001-five.patch": P_LINE5})
    (ok,) = check_series(tree, pdir)
    assert (ok.status, ok.summary()) == ("ok", "OK")
    (moved,) = check_series(shifted, pdir)
    assert moved.ok and moved.summary() == "OK (offset 3 lines)"

    bad = write_tree(tmp_path / "bad", {"0001-bad.patch": P_BAD_CONTEXT})
    (failed,) = check_series(tree, bad)
    assert failed.status == "failed" and failed.summary() == "FAILED"
    assert "Hunk #1 FAILED at 8." in failed.output
    assert [r.file for r in failed.rejects] == ["f.txt"]
    assert " line NINE\n+new\n" in failed.rejects[0].text
    assert "rejected hunk(s) for f.txt:" in failed.details()
    assert (tree / "f.txt").read_text() == numbered(12)  # a check never touches the tree
    assert not (tree / "f.txt.rej").exists()


def test_check_is_cumulative_in_series_order(tmp_path):
    tree = write_tree(tmp_path / "tree", {"f.txt": numbered(12)})
    both = write_tree(
        tmp_path / "both", {"0001-five.patch": P_LINE5, "0002-on-top.patch": P_ON_TOP}
    )
    assert [r.summary() for r in check_series(tree, both)] == ["OK", "OK"]

    alone = write_tree(tmp_path / "alone", {"0002-on-top.patch": P_ON_TOP})
    (result,) = check_series(tree, alone)  # without patch 1 its context is not there
    assert result.status == "failed"

    reversed_order = write_tree(
        tmp_path / "rev",
        {
            "0001-five.patch": P_LINE5,
            "0002-on-top.patch": P_ON_TOP,
            "series": "0002-on-top.patch\n0001-five.patch\n",
        },
    )
    results = check_series(tree, reversed_order)
    assert [r.status for r in results] == ["failed", "not-run"]


def test_check_copies_only_touched_files_and_handles_new_files(tmp_path):
    tree = write_tree(tmp_path / "tree", {"f.txt": numbered(12), "other/big.txt": "x\n"})
    new_file = "--- /dev/null\n+++ b/dir/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n"
    pdir = write_tree(tmp_path / "p", {"0001-five.patch": P_LINE5, "0002-new.patch": new_file})
    assert all(r.ok for r in check_series(tree, pdir))
    assert not (tree / "dir").exists()


def test_apply_series_applies_for_real_or_not_at_all(tmp_path):
    tree = write_tree(tmp_path / "tree", {"f.txt": numbered(12)})
    failing = write_tree(
        tmp_path / "failing", {"0001-five.patch": P_LINE5, "0002-bad.patch": P_BAD_CONTEXT}
    )
    with pytest.raises(FwgenError) as e:
        apply_series(tree, failing)
    assert "0002-bad.patch: FAILED" in str(e.value) and "nothing was applied" in str(e.value)
    assert (tree / "f.txt").read_text() == numbered(12)

    good = write_tree(
        tmp_path / "good", {"0001-five.patch": P_LINE5, "0002-on-top.patch": P_ON_TOP}
    )
    assert [r.summary() for r in apply_series(tree, good)] == ["OK", "OK"]
    assert "line five\nline five and a half\n" in (tree / "f.txt").read_text()


@pytest.fixture
def data_root_with_series(tmp_path, monkeypatch):
    """A copy of fwgen's board recipes, with the 4.0 series replaced by the test's."""
    root = tmp_path / "data"
    shutil.copytree(paths.data_root() / "board", root / "board")
    shutil.copytree(paths.data_root() / "overlays", root / "overlays")
    package = paths.br2_external_dir() / "package"
    shutil.copytree(package, root / "br2-external" / "package")  # the recipe's module packages
    pdir = root / "br2-external" / "patches" / "linux" / "4.0"
    pdir.mkdir(parents=True)
    (pdir.parent / "6.1.174").mkdir()  # the recipe's other series: empty here
    monkeypatch.setattr(paths, "data_root", lambda: root)
    tree = write_tree(tmp_path / "tree", {"f.txt": numbered(12), "Makefile": "", "Kconfig": ""})
    return pdir, tree


def test_cli_check_prints_one_line_per_patch(data_root_with_series, capsys):
    pdir, tree = data_root_with_series
    write_tree(pdir, {"0001-five.patch": P_LINE5, "0002-on-top.patch": P_ON_TOP})
    assert main(["patch", "check", "vexpress", "--kernel", "4.0", "--kernel-src", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "  0001-five.patch: OK\n  0002-on-top.patch: OK\n" in out


def test_cli_check_exits_2_and_shows_the_rejected_hunk(data_root_with_series, capsys):
    pdir, tree = data_root_with_series
    write_tree(pdir, {"0001-five.patch": P_LINE5, "0002-bad.patch": P_BAD_CONTEXT})
    assert main(["patch", "check", "vexpress", "--kernel-src", str(tree)]) == 2
    captured = capsys.readouterr()
    assert "0001-five.patch: OK" in captured.out
    assert "0002-bad.patch: FAILED" in captured.out
    assert "Hunk #1 FAILED at 8." in captured.out
    assert "+new" in captured.out
    assert "0002-bad.patch does not apply" in captured.err


# --- import ---------------------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -(\d+),(\d+) \+(\d+),(\d+) @@")


def parse_strict(text: str) -> dict[str, list[tuple[tuple[int, ...], list[str]]]]:
    """A strict reader: hunk bodies are read by their header counts, which must be right."""
    lines = text.split("\n")
    files: dict[str, list[tuple[tuple[int, ...], list[str]]]] = {}
    i = 0
    current = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            assert lines[i + 1].startswith("+++ ")
            old, new = line[4:], lines[i + 1][4:]
            assert old.startswith("a/") and new == "b/" + old[2:], (old, new)
            current = files.setdefault(old[2:], [])
            i += 2
            continue
        m = _HUNK.match(line)
        if m:
            counts = tuple(int(x) for x in m.groups())
            old_n, new_n = counts[1], counts[3]
            body = []
            i += 1
            while old_n or new_n:
                body.append(lines[i])
                kind = lines[i][:1]
                assert kind in (" ", "-", "+"), lines[i]
                old_n -= kind in " -"
                new_n -= kind in " +"
                assert old_n >= 0 and new_n >= 0
                i += 1
            assert not lines[i].startswith((" ", "+", "-")) or lines[i].startswith(("--- ", "-- "))
            current.append((counts, body))
            continue
        i += 1
    return files


def seed_block() -> str:
    text = SEED.read_text()
    return text.split("```patch\n", 1)[1].split("\n```", 1)[0] + "\n"


def seed_tree(root: Path) -> Path:
    """A stand-in for linux-4.0 made of the seed's own old lines (context and removed ones),
    each at the line its hunk header names, with filler lines between: the tree the seed's
    hunks were cut from, as far as the seed itself shows it."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in seed_block().split("\n"):
        if line.startswith("--- "):
            name = line[4:].split("linux-4.0/", 1)[1].split("\t")[0]
            current = files.setdefault(name, [])
        elif m := re.match(r"^@@ -(\d+)", line):
            assert current is not None
            start = int(m.group(1)) - 1
            current += [f"/* filler {i} */\n" for i in range(len(current), start)]
        elif current is not None and line[:1] in (" ", "-") and not line.startswith("--- "):
            current.append(line[1:] + "\n")
    tree = {name: "".join(lines) + "/* end */\n" for name, lines in files.items()}
    return write_tree(root, {**tree, "Makefile": "VERSION = 4\nPATCHLEVEL = 0\n", "Kconfig": ""})


def test_the_seed_is_refused_without_a_tree_its_counts_are_wrong(tmp_path, capsys):
    with pytest.raises(FwgenError) as e:
        import_patch(SEED)
    assert str(e.value).startswith(
        f"{SEED}:11: init/main.c hunk 1: its header says 6 old and 69 new lines, but it has "
        "6 and 67: cut short, or miscounted, which the patch alone cannot tell; give "
        "--kernel-src"
    )
    out = tmp_path / "out"
    assert main(["patch", "import", str(SEED), "-o", str(out)]) == 2
    assert "hunk 1: its header says 6 old and 69 new lines" in capsys.readouterr().err
    assert not out.exists()


def test_seed_document_becomes_a_p1_patch_with_correct_counts(tmp_path):
    imported = import_patch(SEED, kernel_src=seed_tree(tmp_path / "tree"))
    (patch,) = imported.patches
    assert patch.files == tuple(SEED_FILES)
    assert patch.name == "0001-Import-seed-mykthread.md.patch"
    assert "Subject: [PATCH] Import seed-mykthread.md\n" in patch.text
    files = parse_strict(patch.text)
    assert list(files) == SEED_FILES
    headers = {f: [h[0] for h in hunks] for f, hunks in files.items()}
    assert headers == {
        "init/main.c": [(379, 6, 379, 67), (392, 6, 453, 7)],
        "include/linux/sysctl.h": [(34, 6, 34, 8)],
        "kernel/sysctl.c": [(95, 6, 95, 10), (724, 6, 728, 13)],
    }
    # The hunk lines are the seed's own, in order, whitespace and all.
    seed_lines = [
        ln
        for ln in seed_block().split("\n")
        if ln[:1] and ln[0] in " +-" and not ln.startswith(("--- ", "+++ "))
    ]
    ours = [ln for hunks in files.values() for _, body in hunks for ln in body]
    assert ours == seed_lines
    assert "hunk's lines: -379,6 +379,69 -> -379,6 +379,67" in " ".join(patch.repairs)
    [written] = imported.write(tmp_path / "out")
    assert written.read_text() == patch.text
    assert [p.name for p in (tmp_path / "out").iterdir()] == [patch.name]  # no temp files left


DAMAGED_COUNTS = """\
Some text first.

```diff
diff --git a/src/demo.c b/src/demo.c
index 0123456..789abcd 100644
--- a/src/demo.c
+++ b/src/demo.c
@@ -20,5 +20,9 @@ int main(void)
 int main(void)
 {
 \ttick();
+\ttock();
+\ttick();
 \treturn 0;
 }
```
"""


def demo_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tree", {"src/demo.c": DEMO_C, "Makefile": "", "Kconfig": ""})


def import_doc(tmp_path: Path, text: str, name: str = "doc.md", **kwargs):
    doc = tmp_path / name
    doc.write_text(text)
    return import_patch(doc, **kwargs)


def applies_cleanly(tmp_path: Path, tree: Path, patch_text: str) -> Path:
    work = tmp_path / "work"
    shutil.copytree(tree, work)
    patch = tmp_path / "check.patch"
    patch.write_text(patch_text)
    proc = gnu_patch(work, patch)
    assert proc.returncode == 0, proc.stdout
    return work


def test_wrong_hunk_counts_are_recounted_against_a_tree_only(tmp_path):
    tree = demo_tree(tmp_path)
    (patch,) = import_doc(tmp_path, DAMAGED_COUNTS, kernel_src=tree).patches
    assert "@@ -20,5 +20,7 @@ int main(void)\n" in patch.text
    assert any("-20,5 +20,9 -> -20,5 +20,7" in r for r in patch.repairs)
    assert "index 0123456" not in patch.text
    work = applies_cleanly(tmp_path, tree, patch.text)
    assert "\ttick();\n\ttock();\n\ttick();\n\treturn 0;" in (work / "src/demo.c").read_text()
    # Without a tree, two added lines may have been lost as well as miscounted: refused.
    with pytest.raises(FwgenError, match=r"doc.md:8: src/demo.c hunk 1: its header says 5 old"):
        import_doc(tmp_path, DAMAGED_COUNTS)


TRUNCATED = """\
```patch
--- a/src/demo.c
+++ b/src/demo.c
@@ -20,5 +20,8 @@ int main(void)
 int main(void)
 {
 \ttick();
+\ttock();
"""


def test_without_a_tree_nothing_is_guessed(tmp_path):
    """An unclosed fence, a hunk cut short, a line without a diff prefix: each refused, with
    the document line; and nothing is written."""
    cases = {
        "unclosed fence": (TRUNCATED, "doc.md:1: the ```patch block that starts here is never"),
        "truncated hunk": (
            TRUNCATED + "```\n",
            "doc.md:4: src/demo.c hunk 1: its header says 5 old and 8 new lines, but it has 3 "
            "and 4: cut short, or miscounted",
        ),
        "no diff prefix": (
            "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -20,4 +20,5 @@\n int main(void)\n"
            "{\n \ttick();\n+\ttock();\n \treturn 0;\n```\n",
            "doc.md:6: src/demo.c hunk 1: '{' has no diff prefix",
        ),
        "one line too many": (
            "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -20,3 +20,4 @@\n int main(void)\n"
            " {\n \ttick();\n+\ttock();\n \treturn 0;\n```\n",
            "its header says 3 old and 4 new lines, but it has 4 and 5: miscounted",
        ),
    }
    out = tmp_path / "out"
    for name, (doc, words) in cases.items():
        path = tmp_path / "doc.md"
        path.write_text(doc)
        with pytest.raises(FwgenError) as e:
            import_patch(path)
        assert words in str(e.value), name
        assert main(["patch", "import", str(path), "-o", str(out)]) == 2, name
        assert not out.exists(), name
    # The unclosed fence is refused with a tree too: the missing end may be whole hunks.
    with pytest.raises(FwgenError, match="never closed"):
        import_doc(tmp_path, TRUNCATED, kernel_src=demo_tree(tmp_path))
    # What the patch alone proves is still repaired: paths, and a blank context line whose
    # space was stripped when the counts say it is a line of the hunk.
    blank = (
        "```patch\n--- linux-4.0.orig/src/demo.c\n+++ linux-4.0/src/demo.c\n@@ -11,4 +11,5 @@\n"
        " }\n\n+/* between */\n static void tock(void)\n {\n```\n"
    )
    (patch,) = import_doc(tmp_path, blank).patches
    assert "--- a/src/demo.c\n" in patch.text and "\n }\n \n+/* between */\n" in patch.text
    assert any("blank context line" in r for r in patch.repairs)


def test_context_whitespace_is_taken_from_the_tree_when_unambiguous(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -7,4 +7,5 @@\n"
        " {\n         counter++;\n+\tcounter++;\n        if (counter > 10)\n"
        "                 counter = 0;\n```\n"
    )
    (patch,) = import_doc(tmp_path, doc, kernel_src=tree).patches
    assert (
        " {\n \tcounter++;\n+\tcounter++;\n \tif (counter > 10)\n \t\tcounter = 0;\n" in patch.text
    )
    assert sum("whitespace of a context line taken from the tree" in r for r in patch.repairs) == 3
    work = applies_cleanly(tmp_path, tree, patch.text)
    assert "\tcounter++;\n\tcounter++;\n\tif" in (work / "src/demo.c").read_text()


def test_lost_leading_spaces_are_restored(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "```diff\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -11,5 +11,6 @@\n"
        "}\n\n+/* between */\n static void tock(void)\n {\n"
        "```\n"
    )
    (patch,) = import_doc(tmp_path, doc, kernel_src=tree).patches
    assert "\n }\n \n+/* between */\n static void tock(void)\n" in patch.text
    assert any("without its leading space" in r for r in patch.repairs)
    assert any("blank context line" in r for r in patch.repairs)
    applies_cleanly(tmp_path, tree, patch.text)


def test_fenced_hunk_ending_in_space_less_context_keeps_it(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -21,4 +21,5 @@\n"
        "{\n\ttick();\n+\ttock();\n\treturn 0;\n}\n```\n"
    )
    (patch,) = import_doc(tmp_path, doc, kernel_src=tree).patches
    assert "@@ -21,4 +21,5 @@\n {\n \ttick();\n+\ttock();\n \treturn 0;\n }\n" in patch.text
    applies_cleanly(tmp_path, tree, patch.text)
    # In a plain patch file the same trailing line is taken for prose, and the hunk, now
    # with less context after than before, does not apply: refused, not written.
    plain = doc.replace("```patch\n", "").replace("```\n", "")
    with pytest.raises(FwgenError, match="does not apply with patch -p1 -F0"):
        import_doc(tmp_path, plain, name="plain.diff", kernel_src=tree)


def test_context_missing_from_the_tree_is_refused_with_file_hunk_and_line(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "# notes\n\n```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -20,4 +20,5 @@\n"
        " int main(void)\n {\n \tsleep();\n+\ttock();\n \treturn 0;\n```\n"
    )
    out = tmp_path / "out"
    with pytest.raises(FwgenError) as e:
        import_doc(tmp_path, doc, kernel_src=tree).write(out)
    message = str(e.value)
    assert "doc.md:9: src/demo.c hunk 1: context line 'sleep();' is not in" in message
    assert not out.exists()


def test_ambiguous_whitespace_is_refused(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -9,3 +9,4 @@\n"
        "     if (counter > 10)\n         counter = 0;\n+        /* wrapped */\n }\n```\n"
    )
    with pytest.raises(
        FwgenError, match=r"doc.md:4: src/demo.c hunk 1: .* at 2 places \(lines 9, 16\)"
    ):
        import_doc(tmp_path, doc, kernel_src=tree)


def test_one_refused_block_means_nothing_is_written(tmp_path, capsys):
    tree = demo_tree(tmp_path)
    bad = (
        "```patch\n--- a/src/demo.c\n+++ b/src/demo.c\n@@ -1,2 +1,3 @@\n"
        " /* nope */\n+x\n #include <stdio.h>\n```\n"
    )
    doc = tmp_path / "two.md"
    doc.write_text(DAMAGED_COUNTS + "\nand then\n\n" + bad)
    out = tmp_path / "out"
    code = main(["patch", "import", str(doc), "-o", str(out), "--kernel-src", str(tree)])
    assert code == 2
    assert "two.md:24: src/demo.c hunk 1: context line '/* nope */'" in capsys.readouterr().err
    assert not out.exists()


def test_plain_mail_patch_with_signature_imports_without_repairs(tmp_path):
    tree = demo_tree(tmp_path)
    mail = (
        "From 1234 Mon Sep 17 00:00:00 2001\nFrom: A <a@example.org>\nSubject: [PATCH] tock\n\n"
        "Call tock.\n---\n src/demo.c | 1 +\n\n"
        "diff --git a/src/demo.c b/src/demo.c\n--- a/src/demo.c\n+++ b/src/demo.c\n"
        "@@ -21,4 +21,5 @@ int main(void)\n {\n \ttick();\n+\ttock();\n \treturn 0;\n }\n"
        "-- \n2.39.5\n\n"
    )
    (patch,) = import_doc(tmp_path, mail, name="tock.patch", kernel_src=tree).patches
    assert patch.repairs == ()
    assert patch.origin == "the whole file"
    assert (
        "@@ -21,4 +21,5 @@ int main(void)\n {\n \ttick();\n+\ttock();\n \treturn 0;\n }\n-- \nfwgen"
        in patch.text
    )


def test_path_rules_without_and_with_a_tree(tmp_path):
    tree = demo_tree(tmp_path)
    doc = (
        "--- linux-4.0.orig/src/demo.c\n+++ linux-4.0/src/demo.c\n@@ -21,4 +21,5 @@\n"
        " {\n \ttick();\n+\ttock();\n \treturn 0;\n }\n"
    )
    (patch,) = import_doc(tmp_path, doc, name="p.diff").patches
    assert "--- a/src/demo.c\n+++ b/src/demo.c\n" in patch.text
    nested = doc.replace("linux-4.0.orig/", "x/old/tree/").replace("linux-4.0/", "y/tree/")
    (guess,) = import_doc(tmp_path, nested, name="p.diff").patches
    assert "--- a/tree/src/demo.c\n" in guess.text  # no tree: only the differing prefixes go
    (found,) = import_doc(tmp_path, nested, name="p.diff", kernel_src=tree).patches
    assert "--- a/src/demo.c\n" in found.text  # the tree says which suffix is a real file
    (stripped,) = import_doc(tmp_path, nested, name="p.diff", strip_hint=2).patches
    assert "--- a/src/demo.c\n" in stripped.text


def test_documents_without_patches_are_refused(tmp_path):
    with pytest.raises(FwgenError, match="no patch found"):
        import_doc(tmp_path, "# Title\n\n```c\nint x;\n```\n")
    with pytest.raises(FwgenError, match="no file header"):
        import_doc(tmp_path, "```diff\n- just a list\n+ of things\n```\n")


def test_cli_import_writes_into_output_dir(tmp_path, capsys):
    out = tmp_path / "out"
    tree = seed_tree(tmp_path / "tree")
    assert main(["patch", "import", str(SEED), "-o", str(out), "--kernel-src", str(tree)]) == 0
    printed = capsys.readouterr().out
    assert "files: init/main.c, include/linux/sysctl.h, kernel/sysctl.c" in printed
    assert "checked: applies to linux 4.0 with patch -p1 -F0" in printed
    assert [p.name for p in out.iterdir()] == ["0001-Import-seed-mykthread.md.patch"]
    plain = tmp_path / "plain.patch"
    plain.write_text(
        "--- a/src/demo.c\n+++ b/src/demo.c\n@@ -21,4 +21,5 @@\n {\n \ttick();\n+\ttock();\n"
        " \treturn 0;\n }\n"
    )
    assert main(["patch", "import", str(plain), "-o", str(out)]) == 0
    assert "not checked against a kernel tree" in capsys.readouterr().out


# --- the board's own series -------------------------------------------------------------------


def board_series(variant: str) -> tuple[Path, list[Path]]:
    kernel = load_board("vexpress").kernel(variant)
    pdir = kernel.patches_dir()
    patches = series(pdir)
    assert patches, f"{pdir} holds no patches"
    return pdir, patches


@pytest.mark.parametrize("variant", ["4.0", "6.1"])
def test_board_series_is_well_formed(variant):
    _, patches = board_series(variant)
    for patch in patches:
        for line in patch.read_text().splitlines():
            if line.startswith("--- ") and not line.startswith("--- /dev/null"):
                assert line.startswith("--- a/"), f"{patch.name}: {line}"
            if line.startswith("+++ ") and not line.startswith("+++ /dev/null"):
                assert line.startswith("+++ b/"), f"{patch.name}: {line}"


def test_vexpress_61_series_applies_to_debian_linux_61(request, capsys):
    board_series("6.1")  # skips before the (slow) unpacking of the 6.1 tree
    linux61_src = request.getfixturevalue("linux61_src")
    code = main(["patch", "check", "vexpress", "--kernel", "6.1", "--kernel-src", str(linux61_src)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAILED" not in out


@pytest.mark.gated
def test_vexpress_40_series_applies_to_pristine_linux_40(linux40_src):
    pdir, patches = board_series("4.0")
    results = check_series(linux40_src, pdir)
    assert [r.summary() for r in results] == ["OK"] * len(patches), [r.details() for r in results]


@pytest.mark.gated
def test_imported_seed_applies_to_linux_40_like_git_apply_recount(linux40_src, tmp_path):
    (patch,) = import_patch(SEED, kernel_src=linux40_src).patches
    assert "Checked: applies to linux 4.0.0 with patch -p1 -F0" in patch.text
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for rel in SEED_FILES:
        for copy in (ours, theirs):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(linux40_src / rel, copy / rel)

    imported = tmp_path / "imported.patch"
    imported.write_text(patch.text)
    proc = gnu_patch(ours, imported)
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout

    # The seed itself, with only its file names rewritten, through git apply --recount.
    seed = re.sub(r"([ab])/\./linux-4\.0(?:-orig/linux-4\.0)?/", r"\1/", seed_block())
    (tmp_path / "seed.patch").write_text(seed)
    subprocess.run(
        ["git", "apply", "--recount", str(tmp_path / "seed.patch")],
        cwd=theirs,
        check=True,
        capture_output=True,
    )
    for rel in SEED_FILES:
        assert (ours / rel).read_bytes() == (theirs / rel).read_bytes(), rel
        assert (ours / rel).read_bytes() != (linux40_src / rel).read_bytes()


WEB_DAMAGE = {
    "tabs-in-context-as-spaces": lambda ln: (
        " " + ln[1:].replace("\t", "    ") if ln.startswith(" ") else ln
    ),
    "context-without-leading-space": lambda ln: ln[1:] if ln.startswith(" ") else ln,
    "nbsp-indentation": lambda ln: ln.replace("\t", "\u00a0" * 4) if ln.startswith(" ") else ln,
}


@pytest.mark.gated
@pytest.mark.parametrize("damage", sorted(WEB_DAMAGE))
def test_web_damaged_seed_is_repaired_from_linux_40(linux40_src, tmp_path, damage):
    head, rest = SEED.read_text().split("```patch\n", 1)
    block, tail = rest.split("\n```", 1)
    damaged = "\n".join(WEB_DAMAGE[damage](ln) for ln in block.split("\n"))
    doc = tmp_path / "damaged.md"
    doc.write_text(f"{head}```patch\n{damaged}\n```{tail}")
    (repaired,) = import_patch(doc, kernel_src=linux40_src).patches
    (clean,) = import_patch(SEED, kernel_src=linux40_src).patches
    assert repaired.text.split("\n---\n", 1)[1] == clean.text.split("\n---\n", 1)[1]
