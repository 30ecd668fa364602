"""The patched kernel source tree (fwgen.kerneltree): host fixups, a fresh tree, and a kept
tree brought to another series touching only the files that differ (no compiler)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from fwgen import fingerprint, kerneltree
from fwgen.errors import FwgenError


def _tree(root):
    (root / "scripts" / "dtc").mkdir(parents=True)
    (root / "scripts" / "dtc" / "dtc-lexer.lex.c_shipped").write_text(
        "int a;\nYYLTYPE yylloc;\nint b;\n"
    )
    (root / "scripts" / "dtc" / "dtc-parser.tab.c_shipped").write_text(
        "YYLTYPE yylloc; /* kept */\n"
    )
    (root / "scripts" / "dtc" / "dtc-parser.y").write_text("%{\n#include <x>\n%}\n")
    (root / "Makefile").write_text("VERSION = 4\n")
    (root / "Kconfig").write_text("")
    (root / "init").mkdir()
    (root / "init" / "main.c").write_text("one\ntwo\nthree\nfour\nfive\nsix\nseven\n")
    return root


def test_host_fixups_do_what_buildroot_linux_mk_does(tmp_path):
    tree = _tree(tmp_path / "t")
    changed = kerneltree.apply_host_fixups(tree)
    assert sorted(changed) == ["scripts/dtc/dtc-lexer.lex.c_shipped", "scripts/dtc/dtc-parser.y"]
    dtc = tree / "scripts" / "dtc"
    assert (dtc / "dtc-lexer.lex.c_shipped").read_text() == "int a;\nint b;\n"
    assert (dtc / "dtc-parser.tab.c_shipped").read_text() == "YYLTYPE yylloc; /* kept */\n"
    assert (dtc / "dtc-parser.y").read_text() == "%locations\n%{\n#include <x>\n%}\n"
    assert kerneltree.apply_host_fixups(tree) == []  # idempotent


PATCH = """\
--- a/init/main.c
+++ b/init/main.c
@@ -2,5 +2,5 @@
 two
 three
-four
+FOUR
 five
 six
"""


def test_prepare_tree_patches_a_linked_copy_and_leaves_the_pristine_tree_alone(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    before = fingerprint.tree_content(pristine)
    series = tmp_path / "series"
    series.mkdir()
    (series / "0001-four.patch").write_text(PATCH)
    dest = tmp_path / "work" / "src"
    kerneltree.prepare(pristine, dest, series)
    assert "FOUR" in (dest / "init" / "main.c").read_text()
    assert "YYLTYPE" not in (dest / "scripts/dtc/dtc-lexer.lex.c_shipped").read_text()
    assert fingerprint.tree_content(pristine) == before
    # Untouched files are shared with the pristine tree, touched ones are not.
    assert os.path.samefile(dest / "Makefile", pristine / "Makefile")
    assert not os.path.samefile(dest / "init/main.c", pristine / "init/main.c")


def test_prepare_tree_stops_on_a_patch_that_does_not_apply(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    series = tmp_path / "series"
    series.mkdir()
    (series / "0001-bad.patch").write_text(PATCH.replace(" three\n", " THREE\n"))
    with pytest.raises(FwgenError, match="0001-bad.patch"):
        kerneltree.prepare(pristine, tmp_path / "work" / "src", series)


# --- a kept tree brought to another series ------------------------------------------------

ADD_HEADER = """\
--- /dev/null
+++ b/include/new.h
@@ -0,0 +1 @@
+#define NEW 1
"""

SIX = """\
--- a/init/main.c
+++ b/init/main.c
@@ -4,4 +4,4 @@
 four
 five
-six
+SIX
 seven
"""


def _series(root, **patches):
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.patch"):
        old.unlink()
    for name, text in patches.items():
        (root / f"{name}.patch").write_text(text)
    return root


def _mtimes(tree):
    return {
        p.relative_to(tree).as_posix(): p.lstat().st_mtime_ns
        for p in tree.rglob("*")
        if not p.is_dir()
    }


def _age(tree, seconds=1000):
    """Every file of the kept tree `seconds` old (as if built long ago): a rewritten file is
    then recognisable by its mtime, whatever the file system's timestamp granularity."""
    past = time.time() - seconds
    for p in tree.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.stat().st_nlink == 1:
            os.utime(p, (past, past))


def test_update_rewrites_only_the_files_that_differ(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    before = fingerprint.tree_content(pristine)
    old_series = _series(tmp_path / "old", **{"0001-four": PATCH, "0002-header": ADD_HEADER})
    dest = tmp_path / "work" / "src"
    kerneltree.prepare(pristine, dest, old_series)
    _age(dest)
    mtimes = _mtimes(dest)

    # The new series: patch 1 edited (six instead of four), the header patch gone.
    new_series = _series(tmp_path / "new", **{"0001-six": SIX})
    changed = kerneltree.update(pristine, dest, new_series)

    assert changed == ["include/new.h", "init/main.c"]
    fresh = tmp_path / "fresh"
    kerneltree.prepare(pristine, fresh, new_series)
    assert fingerprint.tree_content(dest) == fingerprint.tree_content(fresh)
    assert not (dest / "include").exists()  # the folder only the old series made
    after = _mtimes(dest)
    # Rewritten: newer than anything built before; everything else exactly as it was.
    assert after["init/main.c"] > mtimes["init/main.c"]
    assert {k: v for k, v in after.items() if k != "init/main.c"} == {
        k: v for k, v in mtimes.items() if k not in ("init/main.c", "include/new.h")
    }
    # The host fixups' files have equal content in both trees: kept, not rewritten.
    assert after["scripts/dtc/dtc-parser.y"] == mtimes["scripts/dtc/dtc-parser.y"]
    assert fingerprint.tree_content(pristine) == before
    assert not (dest.parent / "src.next").exists()


def test_a_file_back_to_its_pristine_content_is_newer_than_the_objects(tmp_path):
    # The pristine file's own mtime is years old: linking it back would hide the change.
    pristine = _tree(tmp_path / "pristine")
    os.utime(pristine / "init" / "main.c", (0, 0))
    dest = tmp_path / "src"
    kerneltree.prepare(pristine, dest, _series(tmp_path / "s", **{"0001-four": PATCH}))
    _age(dest)
    built = time.time() - 10  # the objects of the last build
    changed = kerneltree.update(pristine, dest, _series(tmp_path / "s"))
    assert changed == ["init/main.c"]
    assert (dest / "init" / "main.c").read_text() == (pristine / "init" / "main.c").read_text()
    assert (dest / "init" / "main.c").stat().st_mtime > built
    assert not os.path.samefile(dest / "init" / "main.c", pristine / "init" / "main.c")
    assert (pristine / "init" / "main.c").stat().st_mtime == 0


def test_a_file_changed_by_hand_in_the_kept_tree_is_put_back(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    series = _series(tmp_path / "s", **{"0001-four": PATCH})
    dest = tmp_path / "src"
    kerneltree.prepare(pristine, dest, series)
    (dest / "Makefile").unlink()
    (dest / "Makefile").write_text("VERSION = 99\n")  # an edit that replaced the file
    (dest / "stray.c").write_text("int stray;\n")
    changed = kerneltree.update(pristine, dest, _series(tmp_path / "s2", **{"0001-six": SIX}))
    assert changed == ["Makefile", "init/main.c", "stray.c"]
    fresh = tmp_path / "fresh"
    kerneltree.prepare(pristine, fresh, tmp_path / "s2")
    assert fingerprint.tree_content(dest) == fingerprint.tree_content(fresh)


def test_a_series_that_does_not_apply_leaves_the_kept_tree_alone(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    dest = tmp_path / "src"
    kerneltree.prepare(pristine, dest, _series(tmp_path / "s", **{"0001-four": PATCH}))
    before = (fingerprint.tree_content(dest), _mtimes(dest))
    bad = _series(tmp_path / "bad", **{"0001-bad": PATCH.replace(" three\n", " THREE\n")})
    with pytest.raises(FwgenError, match="0001-bad.patch"):
        kerneltree.update(pristine, dest, bad)
    assert (fingerprint.tree_content(dest), _mtimes(dest)) == before
    assert not (tmp_path / "src.next").exists()


def test_symlinks_and_modes_are_part_of_the_tree(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    (pristine / "scripts" / "run.sh").write_text("#!/bin/sh\n")
    (pristine / "scripts" / "link").symlink_to("run.sh")
    dest = tmp_path / "src"
    kerneltree.prepare(pristine, dest, _series(tmp_path / "s"))
    (dest / "scripts" / "link").unlink()
    (dest / "scripts" / "link").symlink_to("elsewhere")
    # A mode change alone, on a copy (chmod on the shared file would change the pristine one)
    (dest / "Kconfig").unlink()
    (dest / "Kconfig").write_text((pristine / "Kconfig").read_text())
    os.chmod(dest / "Kconfig", 0o755)
    os.chmod(pristine / "Kconfig", 0o644)
    changed = kerneltree.update(pristine, dest, tmp_path / "s")
    assert changed == ["Kconfig", "scripts/link"]
    assert os.readlink(dest / "scripts" / "link") == "run.sh"
    assert (dest / "Kconfig").stat().st_mode & 0o777 == 0o644


def test_a_tree_without_links_is_updated_from_the_old_series_files(tmp_path):
    # Buildroot's kernel tree: its own extraction (no links to the pristine source, its own
    # modes), built in place. The old and the new series' results are compared: only what the
    # change affects is rewritten; the rest, objects included, stays as it is.
    pristine = _tree(tmp_path / "pristine")
    old_series = _series(tmp_path / "old", **{"0001-four": PATCH, "0002-header": ADD_HEADER})
    dest = tmp_path / "build" / "linux"
    kerneltree.prepare(pristine, tmp_path / "linked", old_series)
    shutil.copytree(tmp_path / "linked", dest)  # new inodes everywhere
    for path in dest.rglob("*"):
        path.chmod(0o775 if path.is_dir() else 0o664)
    (dest / "init" / "main.o").write_text("object")
    (dest / "include" / "new.h").write_text("regenerated by the build\n")
    _age(dest)
    mtimes = _mtimes(dest)

    new_series = _series(tmp_path / "new", **{"0001-six": SIX, "0002-header": ADD_HEADER})
    changed = kerneltree.update(pristine, dest, new_series, old_series=old_series)

    assert changed == ["init/main.c"]
    assert (dest / "init" / "main.c").read_text() == "one\ntwo\nthree\nfour\nfive\nSIX\nseven\n"
    assert (dest / "include" / "new.h").read_text() == "regenerated by the build\n"
    after = _mtimes(dest)
    assert after["init/main.c"] > mtimes["init/main.c"]
    assert {k: v for k, v in after.items() if k != "init/main.c"} == {
        k: v for k, v in mtimes.items() if k != "init/main.c"
    }

    # A patch dropped: its file goes (and the folder only it made), the other is put back.
    changed = kerneltree.update(pristine, dest, _series(tmp_path / "none"), old_series=new_series)
    assert changed == ["include/new.h", "init/main.c"]
    assert not (dest / "include").exists()
    assert (dest / "init" / "main.c").read_text() == (pristine / "init" / "main.c").read_text()


def test_a_git_rename_is_followed_both_ways(tmp_path):
    pristine = _tree(tmp_path / "pristine")
    rename = (
        "diff --git a/Kconfig b/Kconfig.renamed\n"
        "similarity index 100%\n"
        "rename from Kconfig\n"
        "rename to Kconfig.renamed\n"
    )
    dest = tmp_path / "src"
    kerneltree.prepare(pristine, dest, _series(tmp_path / "s", **{"0001-rename": rename}))
    assert not (dest / "Kconfig").exists() and (dest / "Kconfig.renamed").exists()
    changed = kerneltree.update(pristine, dest, _series(tmp_path / "s"))
    assert changed == ["Kconfig", "Kconfig.renamed"]
    assert (dest / "Kconfig").exists() and not (dest / "Kconfig.renamed").exists()
