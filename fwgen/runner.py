"""Running a build tool (Kbuild, Buildroot, `make legal-info`): one way for every stage.

The command line goes into the stage's log file ("$ cmd"), then everything the command
prints (stdout and stderr merged, in order); a caller may watch each line for its progress
bar. On Ctrl-C the command gets time to stop cleanly (make removes half-made targets) before
it is killed, and the log says it was interrupted. On failure the caller quotes the log's
tail, cleaned of terminal escapes, with `tail`.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

TAIL_LINES = 40
# A parent make's settings (fwgen run from a Makefile, or from a make-driven CI job) would
# reach the tool's top-level make and change what it does: -j, -k, -n, variables.
PARENT_MAKE_ENV = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "GNUMAKEFLAGS")
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z])")


def clean_line(raw: str) -> str:
    """A line of output without terminal escape codes or trailing blanks."""
    return _ESCAPES.sub("", raw).rstrip()


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without a parent make's settings."""
    return {k: v for k, v in env.items() if k not in PARENT_MAKE_ENV}


def run(
    cmd: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str],
    on_line: Callable[[str], None] | None = None,
) -> int:
    """Run `cmd`, appending "$ cmd" and its merged output to `log_path`; its exit status.
    `on_line` sees each line cleaned of terminal escapes."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8", errors="replace", buffering=1) as out:
        out.write(f"\n$ {shlex.join(cmd)}\n")
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment(env),
            text=True,
            errors="replace",
            bufsize=1,
        )
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                out.write(raw)
                if on_line is not None:
                    on_line(clean_line(raw))
            return proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            out.write("\n*** interrupted (Ctrl-C) ***\n")
            raise
        except BaseException:
            proc.kill()
            proc.wait()
            raise


def capture(cmd: Sequence[str], log_path: Path, *, env: Mapping[str, str]) -> tuple[int, str]:
    """Run `cmd` for what it prints on stdout (JSON, a listing); "$ cmd" and its stderr go
    to `log_path`. (exit status, stdout)."""
    result = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        errors="replace",
        env=environment(env),
        check=False,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8", errors="replace") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n{result.stderr}")
    return result.returncode, result.stdout


def _stop(proc: subprocess.Popen[str]) -> None:
    """make got the terminal's SIGINT too; give it time to remove half-made targets."""
    for sig, grace in ((None, 2.0), (signal.SIGINT, 30.0), (signal.SIGTERM, 10.0)):
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            break
    proc.kill()
    proc.wait()


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of a log, without terminal escape codes."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [clean_line(line) for line in deque(f, maxlen=lines)]
    except FileNotFoundError:
        return []


def indent(lines: Iterable[str]) -> str:
    return "\n".join(f"  | {line}" for line in lines)
