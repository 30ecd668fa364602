"""The [smoke] part of a board recipe: checks are data, validated with file and key named."""

from __future__ import annotations

import re
import tomllib

import pytest

from fwgen import paths, qemu, smoke, smoke_session
from fwgen.board import load_board, load_board_file
from fwgen.errors import FwgenError
from tests.conftest import anywhere_recipe
from tests.rootfs import fake_kernel_images

RECIPE = paths.boards_dir() / "vexpress" / "board.toml"

GOOD_CHECK = '[smoke.checks.a]\nrun = "true"\n'


def test_vexpress_declares_the_feature_checks_in_order():
    board = load_board("vexpress")
    assert [c.name for c in board.smoke.checks.values()] == list(board.smoke.checks)
    assert list(board.smoke.checks) == [
        "kernel release matches the variant",
        "mykthread is running",
        "myevent_handler holds the handler set at boot",
        "first signal to mykthread: handler records TROUBLED_DS=1",
        "second signal to mykthread: handler records TROUBLED_DS=2",
        "demo module loads",
        "demo helper records hello when the module unloads",
        "event source module loads",
        "one event from a timer callback: handler records source=event TROUBLED_DS=4242",
        "burst of 100 events: 100 handler runs, ids in order, none lost, counters agree",
        "overflow: a burst of 200 loses 72 events, counted and reported, the rest in order",
        "unloading the event source while its 100 events are handled is safe",
        "unloading the event source with a burst pending cancels it",
        "third signal, after the events: handler records source=signal TROUBLED_DS=3",
        "dmesg shows no oops, BUG or WARNING",
    ]
    assert board.smoke.poweroff.run == "poweroff"
    assert board.smoke.login.user == "root"


def test_vexpress_vars_name_files_the_overlays_install():
    board = load_board("vexpress")
    for name in ("handler", "demo_helper"):
        target = board.smoke.vars[name].lstrip("/")
        found = [o for o in board.overlay_dirs() if (o / target).is_file()]
        assert found, f"{name} = {board.smoke.vars[name]} is in no overlay of the board"


@pytest.mark.parametrize(
    ("variant", "manifest_version", "release", "matches"),
    [
        ("4.0", None, "4.0.0", True),
        ("4.0", "4.0", "4.0.0-dirty", True),
        ("4.0", None, "4.1.0", False),
        ("4.0", None, "14.0.0", False),
        ("6.1", "6.1.192", "6.1.192", True),
        ("6.1", None, "6.1.174", True),
        ("6.1", None, "6.10.3", False),
    ],
)
def test_release_check_against_each_variant(tmp_path, variant, manifest_version, release, matches):
    board = load_board("vexpress")
    version = manifest_version or board.kernel(variant).version  # None: as the recipe pins it
    kernel = {"variant": variant, "version": version}
    images = qemu.find_images(
        board, fake_kernel_images(tmp_path / "i", manifest={"board": "vexpress", "kernel": kernel})
    )
    values = smoke.variables(board, images)
    check = board.smoke.checks["kernel release matches the variant"]
    pattern = smoke_session.render(check.expect, values, regex=True)
    assert bool(re.search(pattern, release, re.MULTILINE)) is matches, pattern


def test_render_escapes_for_regexes_only():
    values = {"v": "6.1+x", "board": "b"}
    assert smoke_session.render("echo {v} ${v} {2}", values) == "echo 6.1+x ${v} {2}"
    assert smoke_session.render("^{v}$", values, regex=True) == r"^6\.1\+x$"


def _recipe_with(tmp_path, smoke_toml: str):
    text = anywhere_recipe()
    head = text[: text.index("[smoke]")]
    path = tmp_path / "board" / "x" / "board.toml"
    path.parent.mkdir(parents=True)
    path.write_text(head + smoke_toml)
    tomllib.loads(path.read_text())  # the test's own TOML must be valid
    return path


def test_minimal_smoke_section_gets_defaults(tmp_path):
    board = load_board_file(_recipe_with(tmp_path, GOOD_CHECK))
    check = board.smoke.checks["a"]
    assert check.name == "a"
    assert (check.expect, check.expect_exit, check.poll, check.timeout) == ("", 0, 0.0, 30.0)
    assert board.smoke.login.prompt == "login:" and board.smoke.poweroff.timeout == 120.0


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("[smoke.checks.a]\nsetup = 'x'\n", "smoke.checks.a.run", "missing"),
        ('[smoke.checks.""]\nrun = "x"\n', "smoke", "its key must not be empty"),
        (GOOD_CHECK + 'expect = "(["\n', "smoke.checks.a.expect", "not a valid regular"),
        (GOOD_CHECK + "timeout = 0\n", "smoke.checks.a.timeout", "greater than 0"),
        (GOOD_CHECK + "poll = -1\n", "smoke.checks.a.poll", "must not be negative"),
        (GOOD_CHECK + 'expect_exit = "1"\n', "smoke.checks.a.expect_exit", "an integer"),
        (GOOD_CHECK + "retries = 3\n", "smoke.checks.a.retries", "unknown key"),
        (GOOD_CHECK + 'name = "b"\n', "smoke.checks.a.name", "unknown key"),
        ('[smoke.checks.a]\nrun = "echo {nope}"\n', "smoke", "unknown variable {nope}"),
        ("[smoke]\nchecks = [{run = 'x'}]\n", "smoke.checks", "expected a table"),
        ("[smoke.vars]\nboard = 'x'\n", "smoke.vars", "'board' is built in"),
        ("[smoke.vars]\nx = 'a b'\n", "smoke.vars", "only letters, digits"),
        ("[smoke.vars]\nx = 'a;reboot'\n", "smoke.vars", "pasted into shell commands"),
        ("[smoke.login]\nprompt = '('\n", "smoke.login.prompt", "not a valid regular"),
        ("[smoke.poweroff]\nhalt = true\n", "smoke.poweroff.halt", "unknown key"),
    ],
)
def test_bad_smoke_sections_name_file_and_key(tmp_path, toml, key, words):
    path = _recipe_with(tmp_path, toml)
    with pytest.raises(FwgenError) as e:
        load_board_file(path)
    assert f"{path}: key '{key}'" in str(e.value)
    assert words in str(e.value)


def test_shell_variables_and_regex_repetitions_are_not_recipe_variables(tmp_path):
    toml = GOOD_CHECK.replace('"true"', '"x=1; echo ${x}"') + "expect = '^\\d{1,3}$'\n"
    board = load_board_file(_recipe_with(tmp_path, toml))
    assert board.smoke.checks["a"].run == "x=1; echo ${x}"


def test_manifest_version_must_be_plain(tmp_path):
    board = load_board("vexpress")
    bad = {"board": "vexpress", "kernel": {"variant": "6.1", "version": "6.1; reboot"}}
    images = qemu.find_images(board, fake_kernel_images(tmp_path / "i", manifest=bad))
    with pytest.raises(FwgenError, match="not a plain version"):
        smoke.variables(board, images)


def test_a_check_named_twice_is_a_toml_error(tmp_path):
    path = _recipe_with(tmp_path, "")
    path.write_text(path.read_text() + GOOD_CHECK + GOOD_CHECK)
    with pytest.raises(FwgenError, match="not valid TOML"):
        load_board_file(path)
