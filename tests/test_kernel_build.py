"""Kernel-only build: the rebuild rules, the host fixups and tree preparation (no compiler)."""

from __future__ import annotations

import os

import pytest

from fwgen import fingerprint
from fwgen.errors import FwgenError
from fwgen.kernel import apply_host_fixups, decide, prepare_tree

STATE = {
    "source": {"tarball": "linux-4.0.tar.xz", "sha256": "a" * 64},
    "series": [["0001-a.patch", "1" * 64], ["0002-b.patch", "2" * 64]],
    "fixups": 1,
    "toolchain": {"prefix": "arm-linux-gnueabi-", "version": "gcc 12.2.0"},
}


def _with(**changes):
    return {**STATE, **changes}


def test_first_build_is_fresh():
    decision = decide(None, STATE)
    assert decision.fresh
    assert decision.reasons == ("no earlier kernel-only build here",)


def test_same_inputs_build_incrementally():
    assert not decide(STATE, dict(STATE)).fresh


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"source": {"tree": "/src", "stat": "b" * 64}}, "the kernel source changed"),
        ({"series": [["0001-a.patch", "1" * 64]]}, "the patch series changed (0002-b.patch)"),
        (
            {"series": [["0001-a.patch", "9" * 64], ["0002-b.patch", "2" * 64]]},
            "the patch series changed (0001-a.patch)",
        ),
        (
            {"series": [["0002-b.patch", "2" * 64], ["0001-a.patch", "1" * 64]]},
            "the patch series changed (order)",
        ),
        ({"fixups": 2}, "fwgen's host fixups changed"),
        ({"toolchain": {"prefix": "x-", "version": "gcc 13"}}, "the toolchain changed"),
    ],
)
def test_changed_tree_inputs_make_a_fresh_tree(change, reason):
    decision = decide(STATE, _with(**change))
    assert decision.fresh
    assert decision.reasons == (reason,)


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
    changed = apply_host_fixups(tree)
    assert sorted(changed) == ["scripts/dtc/dtc-lexer.lex.c_shipped", "scripts/dtc/dtc-parser.y"]
    dtc = tree / "scripts" / "dtc"
    assert (dtc / "dtc-lexer.lex.c_shipped").read_text() == "int a;\nint b;\n"
    assert (dtc / "dtc-parser.tab.c_shipped").read_text() == "YYLTYPE yylloc; /* kept */\n"
    assert (dtc / "dtc-parser.y").read_text() == "%locations\n%{\n#include <x>\n%}\n"
    assert apply_host_fixups(tree) == []  # idempotent


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
    prepare_tree(pristine, dest, series)
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
        prepare_tree(pristine, tmp_path / "work" / "src", series)


# --- what the manifest says the source was ----------------------------------------------------


def _small_tree(root):
    root.mkdir()
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n")
    (root / "Kconfig").write_text("")
    (root / "init").mkdir()
    (root / "init" / "main.c").write_text("int main;\n")
    return root


def test_a_source_tree_is_named_with_its_version_content_and_commit(tmp_path, monkeypatch):
    import shutil
    import subprocess

    from fwgen import kernel, release

    tree = _small_tree(tmp_path / "linux-6.1")
    source = kernel.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(None)
    public = source.public_identity()
    assert public["kind"] == "tree" and public["tree"] == "linux-6.1"
    assert public["version"] == "6.1.192"
    assert public["content_sha256"] == fingerprint.tree_content(tree)
    assert str(tmp_path) not in repr(public)  # no host path in the manifest
    assert "git" not in public
    words = release.source_words(public)
    assert "the source tree 'linux-6.1' (linux 6.1.192)" in words
    assert public["content_sha256"] in words
    # the content changes when a file does, whatever the mtimes say
    (tree / "init" / "main.c").write_text("int main2;\n")
    again = kernel.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(None)
    assert again.public_identity()["content_sha256"] != public["content_sha256"]
    # an unchanged tree reuses the recorded sha256 instead of hashing again
    state = {"source": again.identity}
    monkeypatch.setattr(fingerprint, "tree_content", lambda *a, **k: pytest.fail("hashed"))
    same = kernel.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(state)
    assert same.identity == again.identity
    monkeypatch.undo()
    # a state written before the sha256 was recorded does not force a fresh tree
    old_state = {
        **STATE,
        "source": {k: v for k, v in same.identity.items() if k != "content_sha256"},
    }
    assert not decide(old_state, {**STATE, "source": same.identity}).fresh
    # a git checkout: the commit, and whether tracked files differ from it
    if shutil.which("git"):
        git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        found = kernel.resolve_source(None, str(tree), mirrors=(), offline=True)
        public = found.with_content(None).public_identity()
        assert public["git"] == {"commit": head.stdout.strip(), "dirty": False}
        assert public["content_sha256"] == again.public_identity()["content_sha256"]  # no .git
        (tree / "Kconfig").write_text("# changed\n")
        found = kernel.resolve_source(None, str(tree), mirrors=(), offline=True)
        assert found.with_content(None).public_identity()["git"]["dirty"] is True
