"""Kernel-only build: the rebuild rules and what the manifest says the source was (no
compiler; the patched tree itself: test_kerneltree.py)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from fwgen import fingerprint, kernelplan
from fwgen.buildstate import State
from fwgen.kernelplan import Inputs, decide
from tests.manifests import VEXPRESS_MODULE_PACKAGES

OUTPUTS = {
    "kernel configuration": {"defconfig": "vexpress_defconfig"},
    "module packages": {"usermodehelper-demo": "3" * 64},
    "root filesystem": {"file": "rootfs.cpio.gz", "sha256": "4" * 64},
    "overlays": {"../../overlays/common": "5" * 64},
    "fwgen": "6" * 64,
}
INPUTS = Inputs(
    source={"tarball": "linux-4.0.tar.xz", "sha256": "a" * 64},
    series=(("0001-a.patch", "1" * 64), ("0002-b.patch", "2" * 64)),
    fixups=1,
    toolchain={"prefix": "arm-linux-gnueabi-", "version": "gcc 12.2.0"},
    outputs=OUTPUTS,
)
STARTED = State(INPUTS, complete=False)  # the tree is there, the images are not (yet)
BUILT = State(INPUTS, complete=True)


def _with(**changes) -> Inputs:
    return dataclasses.replace(INPUTS, **changes)


def test_first_build_is_fresh():
    decision = decide(None, INPUTS)
    assert decision.fresh
    assert decision.reasons == ("no earlier kernel-only build here",)


def test_same_inputs_after_an_unfinished_build_build_incrementally():
    decision = decide(STARTED, INPUTS)
    assert decision.action == kernelplan.INCREMENTAL
    assert decision.reasons == (
        "same source, series and toolchain: incremental build (the last one did not finish)",
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"source": {"tree": "/src", "stat": "b" * 64}}, "the kernel source changed"),
        ({"fixups": 2}, "fwgen's host fixups changed"),
        ({"toolchain": {"prefix": "x-", "version": "gcc 13"}}, "the toolchain changed"),
    ],
)
def test_changed_tree_inputs_make_a_fresh_tree(change, reason):
    decision = decide(STARTED, _with(**change))
    assert decision.fresh
    assert decision.reasons == (reason,)


@pytest.mark.parametrize(
    ("series", "what"),
    [
        ((("0001-a.patch", "1" * 64),), "0002-b.patch"),
        ((("0001-a.patch", "9" * 64), ("0002-b.patch", "2" * 64)), "0001-a.patch"),
        ((("0002-b.patch", "2" * 64), ("0001-a.patch", "1" * 64)), "order"),
    ],
)
def test_a_changed_series_alone_updates_the_kept_tree(series, what):
    decision = decide(BUILT, _with(series=series))
    assert decision.action == kernelplan.NEW_SERIES and not decision.fresh
    assert decision.reasons == (
        f"the patch series changed ({what}): only the files it changes are rewritten",
    )


def test_a_missing_tree_or_object_directory_makes_a_fresh_tree():
    for inputs in (INPUTS, _with(series=(("0001-a.patch", "1" * 64),))):
        decision = decide(BUILT, inputs, kept=False)
        assert decision.fresh
        assert decision.reasons == ("the last build's tree or objects are gone",)


def test_a_changed_series_with_anything_else_makes_a_fresh_tree():
    changed = _with(series=(("0001-a.patch", "1" * 64),), toolchain={"prefix": "x-"})
    decision = decide(BUILT, changed)
    assert decision.fresh
    assert decision.reasons == (
        "the toolchain changed",
        "the patch series changed (0002-b.patch)",
    )


def _never():
    pytest.fail("images/ checked although an input changed")


def test_nothing_changed_and_intact_images_is_up_to_date():
    decision = decide(BUILT, INPUTS, lambda: True)
    assert decision.action == kernelplan.UP_TO_DATE
    assert decision.reasons == (
        "no input changed since the last build (source, series, toolchain, fwgen, kernel "
        "configuration, module packages, overlays, root filesystem) and images/ verifies "
        "against its manifest",
    )


def test_images_that_do_not_verify_are_built_again():
    decision = decide(BUILT, INPUTS, lambda: False)
    assert decision.action == kernelplan.INCREMENTAL
    assert decision.reasons == (
        "same source, series and toolchain: incremental build (images/ does not verify)",
    )


@pytest.mark.parametrize("key", sorted(OUTPUTS))
def test_any_other_input_changed_is_an_incremental_build_naming_it(key):
    decision = decide(BUILT, _with(outputs={**OUTPUTS, key: "changed"}), _never)
    assert decision.action == kernelplan.INCREMENTAL
    assert decision.reasons == (
        f"same source, series and toolchain: incremental build ({key} changed)",
    )


def test_an_unfinished_build_is_never_up_to_date():
    assert decide(STARTED, INPUTS, _never).action == kernelplan.INCREMENTAL


# --- the kernel .config kept as it is -------------------------------------------------------


def _config_case(tmp_path, text="CONFIG_SYSCTL=y\n"):
    config = tmp_path / ".config"
    config.write_text(text)
    return config, State(_with(config=hashlib.sha256(text.encode()).hexdigest()), complete=True)


@pytest.mark.parametrize(
    ("rewritten", "why"),
    [
        ([], "its inputs are unchanged"),
        (["init/main.c"], "the series changed no Kconfig file, defconfig or the kernel Makefile"),
    ],
)
def test_the_last_config_is_kept_when_nothing_it_is_made_from_changed(tmp_path, rewritten, why):
    config, previous = _config_case(tmp_path)
    assert kernelplan.config_kept(previous, INPUTS, rewritten, config) == why


@pytest.mark.parametrize(
    "rewritten",
    [
        ["init/Kconfig"],
        ["drivers/misc/Kconfig.debug"],
        ["arch/arm/configs/vexpress_defconfig"],
        ["scripts/kconfig/conf.c"],
        ["Makefile"],
        None,  # a fresh tree
    ],
)
def test_a_change_to_what_kconfig_reads_makes_the_config_again(tmp_path, rewritten):
    config, previous = _config_case(tmp_path)
    assert kernelplan.config_kept(previous, INPUTS, rewritten, config) is None


def test_a_changed_configuration_input_or_config_file_makes_the_config_again(tmp_path):
    config, previous = _config_case(tmp_path)
    changed = {**OUTPUTS, "kernel configuration": {"defconfig": "other_defconfig"}}
    assert kernelplan.config_kept(previous, _with(outputs=changed), [], config) is None
    config.write_text("CONFIG_SYSCTL=n\n")  # the .config edited since the last build
    assert kernelplan.config_kept(previous, INPUTS, [], config) is None
    config.unlink()
    assert kernelplan.config_kept(previous, INPUTS, [], config) is None
    # A build that did not finish, or none, leaves no .config to keep.
    config.write_text("CONFIG_SYSCTL=y\n")
    assert kernelplan.config_kept(previous, INPUTS, [], config) is not None
    unfinished = dataclasses.replace(previous, complete=False)
    assert kernelplan.config_kept(unfinished, INPUTS, [], config) is None
    assert kernelplan.config_kept(STARTED, INPUTS, [], config) is None
    assert kernelplan.config_kept(None, INPUTS, [], config) is None


def test_the_other_inputs_follow_overlays_modules_and_the_recipe(tmp_path, monkeypatch):
    from fwgen.board import load_board

    board = load_board("vexpress")
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "motd").write_text("hello\n")
    board = dataclasses.replace(board, overlays=(str(overlay),))
    rootfs = tmp_path / "rootfs.cpio.gz"
    rootfs.write_bytes(b"070701")
    variant = board.kernel("6.1")
    first = kernelplan.outputs_inputs(board, variant, ("usermodehelper-demo",), rootfs)
    assert first == kernelplan.outputs_inputs(board, variant, ("usermodehelper-demo",), rootfs)
    (overlay / "etc" / "motd").write_text("changed\n")
    second = kernelplan.outputs_inputs(board, variant, ("usermodehelper-demo",), rootfs)
    assert [k for k in first if first[k] != second[k]] == ["overlays"]
    rootfs.write_bytes(b"070701 changed")
    third = kernelplan.outputs_inputs(board, variant, ("usermodehelper-demo",), rootfs)
    assert [k for k in first if second[k] != third[k]] == ["root filesystem"]
    other = dataclasses.replace(variant, requirements=(*variant.requirements, "MODULES"))
    fourth = kernelplan.outputs_inputs(board, other, ("usermodehelper-demo",), rootfs)
    assert [k for k in first if third[k] != fourth[k]] == ["kernel configuration"]
    assert len(VEXPRESS_MODULE_PACKAGES) > 1
    fifth = kernelplan.outputs_inputs(board, other, VEXPRESS_MODULE_PACKAGES, rootfs)
    assert [k for k in first if fourth[k] != fifth[k]] == ["module packages"]


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

    from fwgen import manifest

    tree = _small_tree(tmp_path / "linux-6.1")
    source = kernelplan.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(None)
    public = source.public_identity()
    assert public["kind"] == "tree" and public["tree"] == "linux-6.1"
    assert public["version"] == "6.1.192"
    assert public["content_sha256"] == fingerprint.tree_content(tree)
    assert str(tmp_path) not in repr(public)  # no host path in the manifest
    assert "git" not in public
    words = manifest.source_words(public)
    assert "the source tree 'linux-6.1' (linux 6.1.192)" in words
    assert public["content_sha256"] in words
    # the content changes when a file does, whatever the mtimes say
    (tree / "init" / "main.c").write_text("int main2;\n")
    again = kernelplan.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(None)
    assert again.public_identity()["content_sha256"] != public["content_sha256"]
    # an unchanged tree reuses the recorded sha256 instead of hashing again
    state = State(_with(source=again.identity), complete=True)
    monkeypatch.setattr(fingerprint, "tree_content", lambda *a, **k: pytest.fail("hashed"))
    same = kernelplan.resolve_source(None, str(tree), mirrors=(), offline=True).with_content(state)
    assert same.identity == again.identity
    monkeypatch.undo()
    # a state written before the sha256 was recorded does not force a fresh tree
    unhashed = {k: v for k, v in same.identity.items() if k != "content_sha256"}
    assert not decide(State(_with(source=unhashed), True), _with(source=same.identity)).fresh
    # a git checkout: the commit, and whether tracked files differ from it
    if shutil.which("git"):
        git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        found = kernelplan.resolve_source(None, str(tree), mirrors=(), offline=True)
        public = found.with_content(None).public_identity()
        assert public["git"] == {"commit": head.stdout.strip(), "dirty": False}
        assert public["content_sha256"] == again.public_identity()["content_sha256"]  # no .git
        (tree / "Kconfig").write_text("# changed\n")
        found = kernelplan.resolve_source(None, str(tree), mirrors=(), offline=True)
        assert found.with_content(None).public_identity()["git"]["dirty"] is True
