"""Download benchmark: fwgen vs curl over loopback, resume efficiency, cache-hit latency.

    .venv/bin/python bench/bench_download.py [--size-mb 200] [--cache-mb 80] [--rounds 7]

A sendfile() server runs in its own process, so neither client shares a CPU with Python
serving code more than the other. Figures:
  1. throughput of one file, fwgen (requests + sha256 while streaming) vs `curl -o`,
     alternating rounds, median MB/s of each and their ratio (goal: fwgen >= 0.90 x curl);
  2. resume: the server closes the connection at 50%; fwgen resumes with a Range request;
     bytes the server sent in total / file size (goal: <= 1.01);
  3. cache hit: time for fetch() to return an already downloaded, sha256-verified file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MB = 1_000_000


# --- the server (runs in a child process) ------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(65536)
            if not data:
                return
            head += data
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split()[1]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if path == "/__stats":
            self._send_json({"body_bytes": self.server.body_bytes})
            return
        cut = path.startswith("/cut50/")
        file = self.server.root / os.path.basename(path)
        if not file.is_file():
            self.request.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        self._send_file(file, headers.get("range", ""), cut)

    def _send_json(self, value: object) -> None:
        body = json.dumps(value).encode()
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def _send_file(self, file: Path, range_header: str, cut: bool) -> None:
        size = file.stat().st_size
        start = int(range_header[6:].split("-")[0]) if range_header.startswith("bytes=") else 0
        status = "206 Partial Content" if start else "200 OK"
        head = f"HTTP/1.1 {status}\r\nContent-Length: {size - start}\r\nConnection: close\r\n"
        if start:
            head += f"Content-Range: bytes {start}-{size - 1}/{size}\r\n"
        self.request.sendall((head + "\r\n").encode())
        # /cut50/ closes the connection (cleanly) once half the file is out.
        end = size // 2 if cut and start < size // 2 else size
        with file.open("rb") as f:
            offset = start
            while offset < end:
                sent = os.sendfile(self.request.fileno(), f.fileno(), offset, end - offset)
                if sent == 0:
                    break
                offset += sent
                with self.server.lock:
                    self.server.body_bytes += sent


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.body_bytes = 0
        self.lock = threading.Lock()


def serve(root: Path) -> None:
    with _Server(root) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


# --- the clients -------------------------------------------------------------------------------


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MB)
    with path.open("wb") as f:
        for i in range(size // MB):
            chunk = block[i % 251 :] + block[: i % 251]  # vary blocks, cheaply
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # client CPU seconds (user + system)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def time_curl(url: str, out: Path) -> Run:
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", str(out), url], check=True)
    run = Run(time.perf_counter() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu)
    out.unlink()
    return run


def time_fwgen(url: str, name: str, sha256: str, cache: Path) -> Run:
    from fwgen import sources
    from fwgen.board import Download

    os.environ["FWGEN_CACHE_DIR"] = str(cache)
    download = Download(file=name, sha256=sha256, urls=(url,))
    cpu = _cpu(resource.RUSAGE_SELF)
    started = time.perf_counter()
    sources.fetch([download])
    run = Run(time.perf_counter() - started, _cpu(resource.RUSAGE_SELF) - cpu)
    shutil.rmtree(cache)
    return run


def server_bytes(base: str) -> int:
    with urllib.request.urlopen(f"{base}/__stats") as response:
        return int(json.load(response)["body_bytes"])


def bench_throughput(base: str, name: str, sha256: str, size: int, work: Path, rounds: int) -> None:
    curl: list[Run] = []
    fwgen: list[Run] = []
    # One untimed round each first: page cache, allocator and TCP settle.
    time_curl(f"{base}/{name}", work / "curl.out")
    time_fwgen(f"{base}/{name}", name, sha256, work / "cache-warmup")
    for i in range(rounds):
        curl.append(time_curl(f"{base}/{name}", work / "curl.out"))
        fwgen.append(time_fwgen(f"{base}/{name}", name, sha256, work / f"cache-t{i}"))
    curl_mbs = size / MB / statistics.median(r.wall for r in curl)
    fwgen_mbs = size / MB / statistics.median(r.wall for r in fwgen)
    print(f"1. throughput, {size / MB:.0f} MB over loopback, median of {rounds} alternating rounds")
    print(f"   curl -o : {curl_mbs:7.1f} MB/s  {_details(curl, size)}")
    print(f"   fwgen   : {fwgen_mbs:7.1f} MB/s  {_details(fwgen, size)}")
    print(f"   ratio fwgen/curl: {fwgen_mbs / curl_mbs:.3f}   (goal >= 0.90)")


def _details(runs: list[Run], size: int) -> str:
    speeds = ", ".join(f"{size / MB / r.wall:.0f}" for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    return f"(runs: {speeds}; client CPU median {cpu:.2f}s)"


def bench_resume(base: str, name: str, sha256: str, size: int, work: Path) -> None:
    from fwgen import download

    download.BACKOFF = 0.05
    before = server_bytes(base)
    time_fwgen(f"{base}/cut50/{name}", name, sha256, work / "cache-resume")
    sent = server_bytes(base) - before
    print("2. resume: the server closes the connection at 50%, fwgen resumes with Range")
    print(f"   bytes sent by the server: {sent} for a {size}-byte file")
    print(f"   transferred / size: {sent / size:.4f}   (goal <= 1.01)")


def bench_cache_hit(base: str, work: Path, size: int, rounds: int) -> None:
    from fwgen import sources
    from fwgen.board import Download

    name = "bench-cache.bin"
    sha256 = make_file(work / "srv" / name, size)
    os.environ["FWGEN_CACHE_DIR"] = str(work / "cache-hit")
    download = Download(file=name, sha256=sha256, urls=(f"{base}/{name}",))
    sources.fetch([download])
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        sources.fetch([download])
        times.append(time.perf_counter() - started)
    print(f"3. cache hit, {size / MB:.0f} MB verified file (page cache warm)")
    print(
        f"   time to a verified answer: median {statistics.median(times) * 1000:.0f} ms "
        f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--cache-mb", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if not shutil.which("curl"):
        print("curl is needed for the comparison: apt-get install curl", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fwgen import log

    log.configure(quiet=True)  # keeps fwgen's retry warning (the resume run shows one)
    with tempfile.TemporaryDirectory(prefix="fwgen-bench-") as tmp:
        work = Path(tmp)
        (work / "srv").mkdir()
        name = "bench-200M.bin"
        size = args.size_mb * MB
        sha256 = make_file(work / "srv" / name, size)
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "srv")], stdout=subprocess.PIPE
        )
        try:
            assert server.stdout is not None
            base = f"http://127.0.0.1:{int(server.stdout.readline())}"
            _wait_listening(base)
            print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
            bench_throughput(base, name, sha256, size, work, args.rounds)
            bench_resume(base, name, sha256, size, work)
            bench_cache_hit(base, work, args.cache_mb * MB, args.rounds + 2)
        finally:
            server.terminate()
            server.wait()
    return 0


def _wait_listening(base: str) -> None:
    host, port = base.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=10):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
