"""Tarball extraction into the content-keyed cache: good tarballs work, malicious ones are
refused with nothing written outside the target and no partial tree left behind."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from fwgen import kernelsrc, paths, sources
from fwgen.errors import FwgenError
from tests.conftest import gated_tree


def _add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    data = attrs.pop("data", b"")
    for key, value in attrs.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        if kind == tarfile.DIRTYPE:
            info.mode = 0o755
        tar.addfile(info)


def make_tarball(path: Path, members: list[tuple], compression: str = "xz") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for name, *rest in members:
            kind = rest[0] if rest else tarfile.REGTYPE
            attrs = rest[1] if len(rest) > 1 else {}
            _add(tar, name, kind, **attrs)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


GOOD = [
    ("pkg-1.0", tarfile.DIRTYPE),
    ("pkg-1.0/Makefile", tarfile.REGTYPE, {"data": b"all:\n"}),
    ("pkg-1.0/Kconfig", tarfile.REGTYPE, {"data": b"config FOO\n"}),
    ("pkg-1.0/include/dt-bindings/clock.h", tarfile.REGTYPE, {"data": b"#define CLK 1\n"}),
    ("pkg-1.0/scripts/run.sh", tarfile.REGTYPE, {"data": b"#!/bin/sh\n", "mode": 0o755}),
    # Like linux's arch/arm/boot/dts/include/dt-bindings -> ../../../../../include/dt-bindings
    (
        "pkg-1.0/arch/arm/boot/dts/include/dt-bindings",
        tarfile.SYMTYPE,
        {"linkname": "../../../../../include/dt-bindings"},
    ),
    ("pkg-1.0/same-dir-link", tarfile.SYMTYPE, {"linkname": "Makefile"}),
    ("pkg-1.0/hardlink", tarfile.LNKTYPE, {"linkname": "pkg-1.0/Kconfig"}),
]


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_good_tarball_extracts_to_its_top_directory(tmp_path: Path, compression: str) -> None:
    tarball = make_tarball(tmp_path / "pkg-1.0.tar", GOOD, compression)
    top = sources.extract(tarball)
    assert top == paths.cache_dir() / "src" / sha(tarball)[:16] / "pkg-1.0"
    assert (top / "Makefile").read_bytes() == b"all:\n"
    link = top / "arch/arm/boot/dts/include/dt-bindings"
    assert link.is_symlink()
    assert (link / "clock.h").read_bytes() == b"#define CLK 1\n"
    assert (top / "same-dir-link").read_bytes() == b"all:\n"
    assert (top / "hardlink").read_bytes() == b"config FOO\n"
    assert os.access(top / "scripts/run.sh", os.X_OK)


def test_extraction_is_reused_and_keyed_by_content(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "pkg.tar.gz", GOOD, "gz")
    top = sources.extract(tarball)
    marker = top / "marker"
    marker.write_text("still here")
    assert sources.extract(tarball, sha256=sha(tarball)) == top
    assert marker.exists()  # reused, not extracted again
    renamed = tmp_path / "renamed.tar.gz"
    tarball.rename(renamed)
    assert sources.extract(renamed) == top


def test_no_single_top_directory_returns_the_root(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "flat.tar", [("a", tarfile.REGTYPE), ("b/c",)], "")
    root = sources.extract(tarball)
    assert root == paths.cache_dir() / "src" / sha(tarball)[:16]
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]


def test_concurrent_extractors_agree(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "pkg.tar.xz", GOOD)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(sources.extract(tarball))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 3 and len(set(results)) == 1
    src = paths.cache_dir() / "src"
    assert sorted(p.name for p in src.iterdir()) == [".locks", sha(tarball)[:16]]


# --- malicious tarballs ---------------------------------------------------------------------


def _malicious(outside: Path) -> dict[str, list[tuple]]:
    """Each case: some good members first (so a partial extraction happens), then the attack."""
    lead = [("pkg", tarfile.DIRTYPE), ("pkg/README", tarfile.REGTYPE, {"data": b"hi"})]
    evil = {"data": b"pwned"}
    return {
        "absolute path": [*lead, (str(outside / "abs-evil"), tarfile.REGTYPE, evil)],
        "'..' in its path": [*lead, (f"pkg/../../{outside.name}/dotdot-evil",)],
        "symlink pointing outside": [
            *lead,
            ("pkg/link", tarfile.SYMTYPE, {"linkname": f"../../{outside.name}"}),
            ("pkg/link/via-symlink-evil", tarfile.REGTYPE, evil),
        ],
        "symlink to an absolute": [
            *lead,
            ("pkg/abslink", tarfile.SYMTYPE, {"linkname": str(outside)}),
            ("pkg/abslink/via-abs-symlink-evil", tarfile.REGTYPE, evil),
        ],
        # Each link alone stays inside; followed one after the other they leave the tree.
        "symlink pointing outside (chain)": [
            *lead,
            ("pkg/d", tarfile.DIRTYPE),
            ("pkg/d/up", tarfile.SYMTYPE, {"linkname": ".."}),
            ("pkg/d/up2", tarfile.SYMTYPE, {"linkname": "up/.."}),
            ("pkg/escape", tarfile.SYMTYPE, {"linkname": "d/up2/.."}),
            ("pkg/escape/chain-evil", tarfile.REGTYPE, evil),
        ],
        "hardlink pointing outside": [
            *lead,
            ("pkg/hl", tarfile.LNKTYPE, {"linkname": f"../{outside.name}/target"}),
        ],
        "hardlink to an absolute": [
            *lead,
            ("pkg/hl", tarfile.LNKTYPE, {"linkname": str(outside / "target")}),
        ],
        "device node": [*lead, ("pkg/sda", tarfile.BLKTYPE, {"devmajor": 8, "devminor": 0})],
        "device node (char)": [
            *lead,
            ("pkg/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
        ],
        "FIFO": [*lead, ("pkg/fifo", tarfile.FIFOTYPE)],
    }


CASES = list(_malicious(Path("/x")).keys())


def _refused_member(members: list[tuple]) -> str:
    """The attack: the last member, or the link a final "write through it" member uses."""
    last = members[-1][0]
    if last.endswith("-evil") and "/" in last and members[-2][1:2] == (tarfile.SYMTYPE,):
        return members[-2][0]
    return last


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("case", CASES)
def test_malicious_tarball_is_refused(tmp_path: Path, case: str) -> None:
    # The cache sits beside `outside`, so "../outside" from the tree's parent hits it.
    cache = paths.cache_dir()
    outside = cache.parent / f"outside-{cache.name}"
    outside.mkdir()
    (outside / "target").write_bytes(b"precious")
    members = _malicious(outside)[case]
    tarball = make_tarball(tmp_path / "evil.tar.xz", members)
    src = cache / "src"
    with pytest.raises(FwgenError) as e:
        sources.extract(tarball)
    message = str(e.value)
    assert f"{tarball}: refusing to extract member {_refused_member(members)!r}" in message
    # Nothing outside the target, and nothing partial left in the cache.
    assert _tree(outside) == ["target"] and (outside / "target").read_bytes() == b"precious"
    assert _tree(src) == [".locks", f".locks/{sha(tarball)[:16]}.lock"]
    assert sorted(os.listdir(cache)) == ["src"]
    assert not any(p.name.endswith("evil") for p in cache.parent.rglob("*evil"))


def test_symlink_check_follows_the_chain_not_just_the_text(tmp_path: Path) -> None:
    # Textually "d/up2/.." is inside; resolved through the earlier links it is not.
    with pytest.raises(FwgenError, match="'pkg/escape'.*outside the tree"):
        sources.extract(
            make_tarball(
                tmp_path / "chain.tar",
                _malicious(tmp_path)["symlink pointing outside (chain)"],
                "",
            )
        )


def test_damaged_tarball_is_a_clear_error(tmp_path: Path) -> None:
    good = make_tarball(tmp_path / "pkg.tar.xz", GOOD)
    damaged = tmp_path / "damaged.tar.xz"
    damaged.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(FwgenError, match="cannot extract"):
        sources.extract(damaged)
    assert _tree(paths.cache_dir() / "src") == [
        ".locks",
        f".locks/{sha(damaged)[:16]}.lock",
    ]


def test_missing_tarball() -> None:
    with pytest.raises(FwgenError, match="no such file"):
        sources.extract(Path("/nonexistent/linux.tar.xz"))


# --- kernel_source ---------------------------------------------------------------------------


def test_kernel_source_directory_is_returned_as_is(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("")
    (tmp_path / "Kconfig").write_text("")
    assert kernelsrc.kernel_source(str(tmp_path)) == tmp_path


def test_kernel_source_directory_must_look_like_a_kernel(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("")
    with pytest.raises(FwgenError, match="not a kernel source tree: no Kconfig"):
        kernelsrc.kernel_source(tmp_path)


def test_kernel_source_tarball_is_extracted(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "linux-1.0.tar.xz", GOOD)
    top = kernelsrc.kernel_source(tarball)
    assert top.name == "pkg-1.0" and (top / "Kconfig").is_file()


def test_kernel_source_tarball_without_a_kernel(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "other.tar.gz", [("x/README",)], "gz")
    with pytest.raises(FwgenError, match="not a kernel source tree"):
        kernelsrc.kernel_source(tarball)


def test_kernel_source_rejects_other_things(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FwgenError, match="neither a directory nor a tarball"):
        kernelsrc.kernel_source(tmp_path / "notes.txt")
    with pytest.raises(FwgenError, match="no such file or directory"):
        kernelsrc.kernel_source(tmp_path / "missing")


@pytest.mark.gated
def test_real_linux40_tarball_extracts_as_a_kernel_tree() -> None:
    given = gated_tree(
        "FWGEN_TEST_LINUX40_SRC",
        "the real linux-4.0.tar.xz passes the safety checks and extracts as a kernel tree",
    )
    if given.is_dir():
        pytest.skip("FWGEN_TEST_LINUX40_SRC is a tree; this test needs the tarball")
    top = kernelsrc.kernel_source(given)
    assert top.name == "linux-4.0"
    makefile = (top / "Makefile").read_text()
    assert "VERSION = 4\n" in makefile and "PATCHLEVEL = 0\n" in makefile
    # Its symlinks (dts includes and the like) all passed the checks and resolve inside.
    for link in (p for p in top.rglob("*") if p.is_symlink()):
        assert link.resolve().is_relative_to(top.parent), link
