"""`fwgen fetch`: the command line over the download layer, with the real vexpress recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fwgen.commands.fetch as fetch_command
from fwgen import download, paths
from fwgen.board import Board, load_board
from fwgen.cli import main
from tests.test_sources_server import FaultServer, running

REPO = Path(__file__).resolve().parent.parent
BUILDROOT = "buildroot-2025.02.16.tar.xz"
LINUX = "linux-4.0.tar.xz"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with running() as s:
        yield s


def dl_dir() -> Path:
    return paths.cache_dir() / "dl"


def test_offline_with_empty_cache_exits_2_listing_files_and_urls(capsys) -> None:
    board = load_board("vexpress")
    assert main(["fetch", "vexpress", "--offline"]) == 2
    err = capsys.readouterr().err
    for pinned in (board.buildroot, board.kernels["4.0"]):
        assert pinned.file in err and pinned.sha256 in err
        for url in pinned.urls:
            assert url in err
    assert BUILDROOT in err and LINUX in err
    assert str(dl_dir()) in err
    assert "Traceback" not in err


def test_offline_kernel_variant_is_honoured(capsys) -> None:
    assert main(["fetch", "vexpress", "--kernel", "6.1", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "linux-6.1.174.tar.xz" in err and LINUX not in err


def test_offline_through_the_real_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fwgen", "fetch", "vexpress", "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert BUILDROOT in result.stderr and LINUX in result.stderr
    assert "https://cdn.kernel.org/pub/linux/kernel/v4.x/linux-4.0.tar.xz" in result.stderr


def test_mirror_with_wrong_content_exits_2_and_keeps_nothing(server: FaultServer, capsys) -> None:
    for name in (BUILDROOT, LINUX):
        server.route(f"/{name}", b"right name, wrong content: " + name.encode())
    assert main(["fetch", "vexpress", "--mirror", server.base + "/"]) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err
    assert f"{server.base}/{BUILDROOT}" in err
    assert load_board("vexpress").buildroot.sha256 in err
    for name in (BUILDROOT, LINUX):
        assert not (dl_dir() / name).exists()
        assert not (dl_dir() / f"{name}.part").exists()


def _board_served_by(server: FaultServer) -> tuple[Board, dict[str, bytes]]:
    """The real vexpress recipe with its pins pointed at small files on `server`."""
    real = load_board("vexpress")
    contents = {BUILDROOT: b"a small buildroot", LINUX: b"a small linux"}

    def repin(download, name: str):
        data = contents[name]
        url = server.route(f"/upstream/{name}", data)
        sha = hashlib.sha256(data).hexdigest()
        return dataclasses.replace(download, sha256=sha, urls=(url,))

    kernels = dict(real.kernels)
    kernels["4.0"] = repin(real.kernels["4.0"], LINUX)
    board = dataclasses.replace(real, buildroot=repin(real.buildroot, BUILDROOT), kernels=kernels)
    return board, contents


def test_fetch_prints_verified_paths_in_sha256sum_format(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    board, contents = _board_served_by(server)
    monkeypatch.setattr(fetch_command, "board_from_args", lambda args: board)
    assert main(["--quiet", "fetch", "vexpress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, (BUILDROOT, LINUX), strict=True):
        sha, path = line.split("  ")
        assert Path(path) == dl_dir() / name
        assert Path(path).read_bytes() == contents[name]
        assert sha == hashlib.sha256(contents[name]).hexdigest()
    # Now it is all cached: offline works, and says the same.
    assert main(["--quiet", "fetch", "vexpress", "--offline"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_repeatable_mirror_option(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    board, contents = _board_served_by(server)
    for name, data in contents.items():
        server.route(f"/m2/{name}", data)
    monkeypatch.setattr(fetch_command, "board_from_args", lambda args: board)
    args = ["--quiet", "fetch", "vexpress", "--mirror", f"{server.base}/m1"]
    assert main([*args, "--mirror", f"{server.base}/m2"]) == 0
    assert [r.path for r in server.log] == [
        f"/m1/{BUILDROOT}",
        f"/m2/{BUILDROOT}",
        f"/m1/{LINUX}",
        f"/m2/{LINUX}",
    ]


def test_bad_mirror_and_unknown_variant_are_user_errors(capsys) -> None:
    assert main(["fetch", "vexpress", "--mirror", "ftp://example.org/"]) == 2
    assert "is neither an http(s) URL nor a file:/// URL" in capsys.readouterr().err
    assert main(["fetch", "vexpress", "--kernel", "9.9", "--offline"]) == 2
    assert "no kernel variant '9.9'" in capsys.readouterr().err
