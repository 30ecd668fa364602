"""fwgen.fsutil: atomic replacement (new inode, mode, cleanup) and file hashes."""

from __future__ import annotations

import hashlib
import os

import pytest

from fwgen import fsutil


def test_sha256_file_and_digest(tmp_path):
    data = os.urandom(3 * fsutil.CHUNK_SIZE + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert fsutil.sha256_file(path) == hashlib.sha256(data).hexdigest()
    digest = fsutil.sha256_digest(path)
    digest.update(b"more")
    assert digest.hexdigest() == hashlib.sha256(data + b"more").hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert fsutil.sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_write_atomic_makes_a_new_inode_and_leaves_hard_links_alone(tmp_path):
    path, link = tmp_path / "f", tmp_path / "pristine"
    path.write_text("old\n")
    os.link(path, link)
    fsutil.write_atomic(path, "new é\n")
    assert path.read_bytes() == "new é\n".encode()
    assert link.read_text() == "old\n"
    assert not path.samefile(link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "pristine"]


def test_mode_given_or_as_a_new_file_gets(tmp_path):
    umask = os.umask(0o027)
    try:
        fsutil.write_atomic(tmp_path / "a", b"x")
        fsutil.write_atomic(tmp_path / "b", b"x", mode=0o755)
    finally:
        os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o7777 == 0o640
    assert (tmp_path / "b").stat().st_mode & 0o7777 == 0o755


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), fsutil.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_write_temp_is_left_for_the_caller_to_place(tmp_path):
    tmp = fsutil.write_temp(tmp_path / "f", "text\n", mode=0o644)
    assert tmp.parent == tmp_path and tmp.name.startswith(".f.")
    assert tmp.read_text() == "text\n" and tmp.stat().st_mode & 0o7777 == 0o644
    assert not (tmp_path / "f").exists()
