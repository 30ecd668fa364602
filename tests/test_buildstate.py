"""The record both build kinds keep for their rebuild planner (fwgen.buildstate): versioned,
typed per build kind, written atomically; anything else counts as no record."""

from __future__ import annotations

import json

import pytest

from fwgen import buildstate, kernelplan, rebuild
from fwgen.buildstate import State
from tests.test_kernel_build import INPUTS as KERNEL_ONLY
from tests.test_rebuild_plan import BASE as BUILDROOT


@pytest.mark.parametrize(
    ("inputs", "load"),
    [(KERNEL_ONLY, kernelplan.load_state), (BUILDROOT, rebuild.load_state)],
    ids=["kernel-only", "buildroot"],
)
def test_each_kind_round_trips_with_its_complete_flag(tmp_path, inputs, load):
    path = tmp_path / "state.json"
    for complete in (False, True):
        buildstate.save(path, State(inputs, complete))
        assert load(path) == State(inputs, complete)
    assert json.loads(path.read_text())["version"] == buildstate.VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_the_kernel_only_series_keeps_its_order(tmp_path):
    path = tmp_path / "state.json"
    reordered = kernelplan.Inputs(**{**vars(KERNEL_ONLY), "series": KERNEL_ONLY.series[::-1]})
    buildstate.save(path, State(reordered, complete=True))
    assert kernelplan.load_state(path).inputs.series == KERNEL_ONLY.series[::-1]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"version": 99, "complete": true, "inputs": {}}',
        '{"version": 1}',
        '{"version": 1, "complete": "yes", "inputs": {}}',
        '{"version": 1, "complete": true, "inputs": []}',
        '{"version": 1, "complete": true, "inputs": {"source": {}}}',
    ],
)
def test_anything_else_is_no_record(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    assert kernelplan.load_state(path) is None
    assert rebuild.load_state(path) is None


def test_a_kernel_only_record_from_before_the_version_starts_afresh(tmp_path):
    # What fwgen wrote before the record had a version and a complete flag: a plain dict.
    path = tmp_path / "state.json"
    old = {**KERNEL_ONLY.to_json(), "config": "c" * 64}
    path.write_text(json.dumps(old))
    assert kernelplan.load_state(path) is None
    assert kernelplan.decide(None, KERNEL_ONLY).fresh


def test_one_kind_is_not_read_as_the_other(tmp_path):
    path = tmp_path / "state.json"
    buildstate.save(path, State(BUILDROOT, complete=True))
    assert kernelplan.load_state(path) is None
    buildstate.save(path, State(KERNEL_ONLY, complete=True))
    assert rebuild.load_state(path) is None


def test_forget(tmp_path):
    path = tmp_path / "state.json"
    buildstate.save(path, State(KERNEL_ONLY, complete=True))
    buildstate.forget(path)
    buildstate.forget(path)  # nothing to forget is fine
    assert kernelplan.load_state(path) is None
