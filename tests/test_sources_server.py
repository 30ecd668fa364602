"""A scriptable HTTP server on 127.0.0.1 for the download fault tests, and its own checks.

Raw sockets rather than http.server, so a test can make it misbehave the way real servers and
networks do: reset the connection mid-body, close it early, drip bytes, ignore Range, lie in
Content-Range, hold a response until the test lets it go. Every request is logged with the
body bytes actually sent.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

STOP_WAIT = 10.0  # upper bound for any wait inside the server, so no test can hang on it


@dataclass
class Reply:
    """How to answer one request.

    kind: ok (honours Range), status (just `status`), reset (RST after `after` body bytes),
    short (clean close after `after` bytes), drip (one byte every `interval` seconds),
    ignore_range (always 200 and the whole file), bad_range (206 with a wrong Content-Range),
    hold (send `after` bytes, wait for `gate`, send the rest).
    """

    kind: str = "ok"
    status: int = 200
    after: int = 0
    interval: float = 0.0
    gate: threading.Event | None = None


@dataclass
class Logged:
    path: str
    range: str | None
    status: int = 0
    body_bytes: int = 0
    method: str = "GET"


@dataclass
class _Route:
    data: bytes
    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)


class FaultServer:
    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def route(self, path: str, data: bytes, *replies: Reply, default: Reply | None = None) -> str:
        """Serve `data` at `path`: the given replies in turn, then `default` (plain ok)."""
        self._routes[path] = _Route(data, list(replies), default or Reply())
        return self.base + path

    def requests_for(self, path: str, *, settle: bool = True) -> list[Logged]:
        """The requests for `path` so far; with `settle`, once their answers are complete
        (the client may finish reading before the server thread has counted its bytes)."""
        if settle:
            for thread in list(self._threads):
                thread.join(STOP_WAIT)
        with self._lock:
            return [entry for entry in self.log if entry.path == path]

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._sock.close()
        self._accepter.join(STOP_WAIT)
        for thread in self._threads:
            thread.join(STOP_WAIT)

    # --- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(STOP_WAIT)
        try:
            method, path, range_header = _read_request(conn)
            entry = Logged(path, range_header, method=method)
            with self._lock:
                self.log.append(entry)
                route = self._routes.get(path)
                reply = route.replies.pop(0) if route and route.replies else None
            if route is None:
                self._status(conn, entry, 404)
            else:
                self._answer(conn, entry, route.data, reply or route.default)
        except OSError:
            pass  # the client went away: part of several tests
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, entry: Logged, data: bytes, reply: Reply) -> None:
        if reply.kind == "status":
            self._status(conn, entry, reply.status)
            return
        start = _range_start(entry.range) if reply.kind != "ignore_range" else 0
        if start >= len(data) and start > 0:
            self._status(conn, entry, 416, f"Content-Range: bytes */{len(data)}\r\n")
            return
        body = data[start:]
        extra = ""
        if start or reply.kind == "bad_range":
            shown = start + 1 if reply.kind == "bad_range" else start
            extra = f"Content-Range: bytes {shown}-{len(data) - 1}/{len(data)}\r\n"
        entry.status = 206 if extra else 200
        _send_head(conn, entry.status, len(body), extra)
        if entry.method != "HEAD":
            self._send_body(conn, entry, body, reply)

    def _send_body(self, conn: socket.socket, entry: Logged, body: bytes, reply: Reply) -> None:
        if reply.kind in ("reset", "short", "hold"):
            self._send(conn, entry, body[: reply.after])
            if reply.kind == "reset":
                # SO_LINGER 0: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if reply.kind == "short":
                conn.shutdown(socket.SHUT_WR)
                return
            assert reply.gate is not None
            reply.gate.wait(STOP_WAIT)
            self._send(conn, entry, body[reply.after :])
        elif reply.kind == "drip":
            deadline = time.monotonic() + STOP_WAIT
            for i in range(len(body)):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                self._send(conn, entry, body[i : i + 1])
                time.sleep(reply.interval)
        else:
            self._send(conn, entry, body)

    def _send(self, conn: socket.socket, entry: Logged, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            entry.body_bytes += len(data)

    def _status(self, conn: socket.socket, entry: Logged, status: int, extra: str = "") -> None:
        entry.status = status
        body = f"status {status}\n".encode()
        _send_head(conn, status, len(body), extra)
        self._send(conn, entry, body)


def _read_request(conn: socket.socket) -> tuple[str, str, str | None]:
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client closed before sending a request")
        head += data
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path = lines[0].split()[:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return method, path, headers.get("range")


def _range_start(value: str | None) -> int:
    match = re.match(r"^bytes=(\d+)-$", value or "")
    return int(match.group(1)) if match else 0


_REASONS = {200: "OK", 206: "Partial Content", 403: "Forbidden", 404: "Not Found"}


def _send_head(conn: socket.socket, status: int, length: int, extra: str = "") -> None:
    reason = _REASONS.get(status, "Whatever")
    conn.sendall(
        (
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {length}\r\n"
            f"Content-Type: application/octet-stream\r\nConnection: close\r\n{extra}\r\n"
        ).encode()
    )


@contextlib.contextmanager
def running() -> Iterator[FaultServer]:
    server = FaultServer()
    try:
        yield server
    finally:
        server.close()


# --- the server's own checks (the fault tests rely on them) ---------------------------------


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with running() as s:
        yield s


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_server_honours_range_and_logs_bytes(server: FaultServer) -> None:
    url = server.route("/f", b"0123456789")
    assert _get(url)[:2] == (200, b"0123456789")
    status, body, headers = _get(url, {"Range": "bytes=4-"})
    assert (status, body) == (206, b"456789")
    assert headers["Content-Range"] == "bytes 4-9/10"
    assert [e.body_bytes for e in server.requests_for("/f")] == [10, 6]


def test_server_plays_replies_in_order(server: FaultServer) -> None:
    url = server.route("/f", b"abc", Reply("status", status=500))
    assert _get(url)[0] == 500
    assert _get(url)[:2] == (200, b"abc")
    assert _get(server.base + "/nothing")[0] == 404
