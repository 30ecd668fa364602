"""fwgen doctor against a PATH the test controls: real lookups, real version probes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fwgen import doctor
from fwgen.cli import main
from fwgen.errors import FwgenError


def _path_with(tmp_path: Path, tools: list[str], fakes: dict[str, str] | None = None) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        real = shutil.which(tool)
        assert real, f"test host lacks {tool}"
        (bindir / tool).symlink_to(real)
    for name, script in (fakes or {}).items():
        fake = bindir / name
        fake.write_text("#!/bin/sh\n" + script)
        fake.chmod(0o755)
    return str(bindir)


def test_missing_tools_give_exact_install_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _path_with(tmp_path, ["sh", "make", "perl"]))
    code = main(["doctor", "vexpress", "--stage", "kernel-only", "--stage", "smoke"])
    out = capsys.readouterr().out
    assert code == 2
    assert "MISSING ARM cross compiler" in out
    assert "ok      make" in out
    expected = "apt-get install bc bison cpio flex gcc-arm-linux-gnueabi patch qemu-system-arm"
    assert out.rstrip().endswith(expected)


def test_too_old_version_is_reported(tmp_path, monkeypatch):
    fake_patch = 'echo "GNU patch 2.5.9"\n'
    monkeypatch.setenv("PATH", _path_with(tmp_path, ["sh"], {"patch": fake_patch}))
    (finding,) = [f for f in doctor.check(["kernel-only"], []) if f.need.what == "patch"]
    assert not finding.ok
    assert "2.5.9, need >= 2.7" in finding.detail


def test_require_raises_with_install_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path, ["sh"]))
    with pytest.raises(FwgenError) as err:
        doctor.require(["flash"])
    assert err.value.hint == "apt-get install bmap-tools"


@pytest.mark.skipif(not os.environ.get("CI"), reason="needs a host prepared by scripts/test")
def test_doctor_passes_on_a_prepared_host(capsys):
    assert main(["doctor", "vexpress"]) == 0
    assert "Everything fwgen needs is here." in capsys.readouterr().out


def test_the_build_stage_says_how_root_is_handled():
    assert doctor.stage_notes("build", euid=1000) == []
    [(what, note)] = doctor.stage_notes("build", euid=0)
    assert what == "user" and "FORCE_UNSAFE_CONFIGURE=1" in note
    assert doctor.stage_notes("kernel-only", euid=0) == []
