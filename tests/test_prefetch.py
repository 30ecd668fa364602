"""--prefetch: parallel downloads into Buildroot's download dir, checked against .hash files."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from fwgen import prefetch


@contextlib.contextmanager
def _server(root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_prefetch_fills_the_download_dir_and_respects_hashes(tmp_path):
    site = tmp_path / "site"
    (site / "mirror").mkdir(parents=True)
    good, evil = b"good source" * 100, b"tampered"
    (site / "foo-1.0.tar.gz").write_bytes(good)
    (site / "bar-2.0.tar.gz").write_bytes(evil)
    (site / "with space-1.tar.gz").write_bytes(good)
    tree = tmp_path / "buildroot"
    (tree / "package" / "foo").mkdir(parents=True)
    (tree / "package" / "foo" / "foo.hash").write_text(
        f"# comment\nsha256  {_sha256(good)}  foo-1.0.tar.gz\n"
        f"sha256  {_sha256(b'x')}  LICENSE\n"
        f"sha256  {_sha256(good)}  with space-1.tar.gz\n"
    )
    bar_hash = tmp_path / "bar.hash"  # absolute, as external trees' hash files are listed
    bar_hash.write_text(f"sha256  {_sha256(b'the real bar')}  bar-2.0.tar.gz\n")
    dl = tmp_path / "dl"
    (dl / "present").mkdir(parents=True)
    (dl / "present" / "present-1.tar.gz").write_text("already here")
    with _server(site) as url:
        info = {
            "foo": {
                "dl_dir": "foo",
                "hashes": ["package/foo/foo.hash"],
                "downloads": [
                    {
                        "source": "foo-1.0.tar.gz",
                        "uris": [f"http+{url}/missing", f"http+{url}"],
                    },
                    {
                        "source": "with space-1.tar.gz",
                        "uris": [f"http|urlencode+{url}"],
                    },
                ],
            },
            "bar": {
                "dl_dir": "bar",
                "hashes": [str(bar_hash)],
                "downloads": [{"source": "bar-2.0.tar.gz", "uris": [f"http+{url}"]}],
            },
            "nohash": {
                "dl_dir": "nohash",
                "hashes": [],
                "downloads": [{"source": "nohash-1.tar.gz", "uris": [f"http+{url}"]}],
            },
            "gitpkg": {
                "dl_dir": "gitpkg",
                "hashes": ["package/foo/foo.hash"],
                "downloads": [{"source": "foo-1.0.tar.gz", "uris": ["git+https://x/y.git"]}],
            },
            "present": {
                "dl_dir": "present",
                "downloads": [{"source": "present-1.tar.gz", "uris": [f"http+{url}"]}],
            },
            "virtual": {"type": "target", "virtual": True},
        }
        result = prefetch.prefetch(info, tree, dl, jobs=3)
    assert (dl / "foo" / "foo-1.0.tar.gz").read_bytes() == good
    assert (dl / "foo" / "with space-1.tar.gz").read_bytes() == good
    assert not (dl / "bar" / "bar-2.0.tar.gz").exists()  # wrong content is never kept
    assert sorted(result.fetched) == ["foo: foo-1.0.tar.gz", "foo: with space-1.tar.gz"]
    assert list(result.failed) == ["bar: bar-2.0.tar.gz"]
    assert "wrong sha256" in result.failed["bar: bar-2.0.tar.gz"]
    assert sorted(result.skipped) == ["gitpkg: foo-1.0.tar.gz", "nohash: nohash-1.tar.gz"]
    assert result.present == ["present: present-1.tar.gz"]
    assert not [p for p in dl.rglob("*.part")]


def test_read_hashes_collects_every_algorithm(tmp_path):
    h = tmp_path / "x.hash"
    h.write_text("md5  abc  x.tar\nsha256  def  x.tar\nsha256  000  y.tar\n#sha1 1 x.tar\n")
    assert prefetch.read_hashes([h, tmp_path / "missing.hash"], "x.tar") == [
        ("md5", "abc"),
        ("sha256", "def"),
    ]
