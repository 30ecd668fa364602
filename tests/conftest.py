"""Shared test setup: every test gets its own fwgen cache and no inherited fwgen settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("FWGEN_") and not name.startswith("FWGEN_TEST_"):
            monkeypatch.delenv(name)
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FWGEN_CACHE_DIR", str(cache))
    return cache


def gated_tree(var: str, proves: str) -> Path:
    """The tree named by $var, or skip saying what the test would have proved."""
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"set {var} to a source tree or tarball to prove: {proves}")
    path = Path(value)
    if not path.exists():
        pytest.fail(f"{var}={value} does not exist")
    return path
