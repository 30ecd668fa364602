"""Running Buildroot's make: quiet steps, the long build with progress, and failure reports.

Buildroot prints `>>> <package> <version> <step>` (in terminal bold) before every package
step, and `>>>   <step>` for global steps (target finalization, root filesystem images,
post-image scripts). The build's progress bar counts packages done out of those
`make show-info` lists; a package is done when its `.stamp_installed` exists, which also
counts the packages an earlier, interrupted run finished. The full output goes to a log file;
on failure the report names the package and step that failed, with the end of the log.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fwgen import runner
from fwgen.errors import FwgenError
from fwgen.log import log, progress_disabled
from fwgen.runner import TAIL_LINES, indent, tail

# Settings in the environment that would override what fwgen configured (the runner also
# removes a parent make's variables, for every tool it runs).
_SCRUBBED_ENV = (
    "BR2_DL_DIR",
    "BR2_CCACHE_DIR",
    "BR2_EXTERNAL",
    "BR2_DEFCONFIG",
    "BR2_CONFIG",
    "O",
)

_PACKAGE_STEP = re.compile(r"^>>> (\S+) (\S*) (.+?)\s*$")
_GLOBAL_STEP = re.compile(r"^>>>\s+(\S.*?)\s*$")
_NO_SPACE = "No space left on device"


class BuildFailed(FwgenError):
    """Buildroot's make failed; the message names the step and quotes the log."""


@dataclass(frozen=True)
class Step:
    package: str  # "" for a global step
    version: str
    action: str

    def __str__(self) -> str:
        if not self.package:
            return self.action
        return f"{self.package} {self.version} {self.action}".replace("  ", " ")


def parse_step(line: str) -> Step | None:
    """The Buildroot step a (cleaned) output line announces, if it is a `>>>` line."""
    match = _PACKAGE_STEP.match(line)
    if match and not line.startswith(">>>  "):
        return Step(match.group(1), match.group(2), match.group(3))
    match = _GLOBAL_STEP.match(line)
    if match:
        return Step("", "", match.group(1))
    return None


@dataclass
class Progress:
    """Packages done out of the total, from show-info, stamps and `>>>` lines."""

    output: Path
    stamps: dict[str, Path]  # package -> its .stamp_installed
    done: set[str] = field(default_factory=set)
    started: list[str] = field(default_factory=list)
    last: Step | None = None

    @classmethod
    def from_show_info(cls, info: Mapping[str, Any], output: Path) -> Progress:
        stamps = {}
        for name, pkg in info.items():
            if pkg.get("virtual") or pkg.get("type") not in ("target", "host"):
                continue
            stamp_dir = pkg.get("stamp_dir")
            if stamp_dir:
                stamps[name] = output / stamp_dir / ".stamp_installed"
        progress = cls(output, stamps)
        progress.done = {name for name, stamp in stamps.items() if stamp.exists()}
        return progress

    @classmethod
    def for_files(cls, files: Mapping[str, Path], output: Path) -> Progress:
        """Packages done when their file exists (`make source`: the download is there)."""
        progress = cls(output, dict(files))
        progress.done = {name for name, path in files.items() if path.exists()}
        return progress

    @property
    def total(self) -> int:
        return len(self.stamps)

    def feed(self, line: str) -> Step | None:
        """Account for one cleaned output line; the step it announces, if any."""
        step = parse_step(line)
        if step is None:
            return None
        self.last = step
        if step.package in self.stamps and step.package not in self.started:
            self.started.append(step.package)
        self.refresh()
        return step

    def refresh(self) -> None:
        for name in self.started:
            if name not in self.done and self.stamps[name].exists():
                self.done.add(name)

    def finish(self) -> None:
        self.done = set(self.stamps)


_reported: set[str] = set()


# GNU configure scripts (host-tar first) stop with "you should not run configure as root"
# unless this is set; containers and CI build as root, and Buildroot's own Docker image sets it.
ROOT_CONFIGURE_ENV = "FORCE_UNSAFE_CONFIGURE"


def make_env(base: Mapping[str, str] | None = None, *, euid: int | None = None) -> dict[str, str]:
    """The environment for Buildroot's make: fwgen's settings must not be overridden."""
    env = runner.environment(os.environ if base is None else base)
    for name in _SCRUBBED_ENV:
        if name in env and name.startswith("BR2_") and name not in _reported:
            _reported.add(name)
            log.info("ignoring $%s from the environment (the build configuration sets it)", name)
        env.pop(name, None)
    if (os.geteuid() if euid is None else euid) == 0:
        env[ROOT_CONFIGURE_ENV] = "1"
        if ROOT_CONFIGURE_ENV not in _reported:
            _reported.add(ROOT_CONFIGURE_ENV)
            log.info(
                "running as root: %s=1 is set for Buildroot, whose GNU packages' configure "
                "scripts refuse root otherwise",
                ROOT_CONFIGURE_ENV,
            )
    return env


@dataclass
class Make:
    """`make -C <buildroot> O=<output> ...` for one build."""

    tree: Path
    output: Path
    make: str = "make"
    environment: Mapping[str, str] = field(default_factory=dict)  # e.g. ccache settings

    def env(self) -> dict[str, str]:
        return {**make_env(), **self.environment}

    def command(self, *targets: str, args: Sequence[str] = ()) -> list[str]:
        return [
            self.make,
            "--no-print-directory",
            "-C",
            str(self.tree),
            f"O={self.output}",
            *args,
            *targets,
        ]

    def run(
        self, targets: Sequence[str], log_path: Path, *, what: str, args: Sequence[str] = ()
    ) -> None:
        """A short make run, its output appended to `log_path`; BuildFailed with the tail."""
        code = runner.run(self.command(*targets, args=args), log_path, env=self.env())
        if code != 0:
            raise BuildFailed(
                f"{what} failed (make exit status {code}); the end of {log_path}:\n"
                + indent(tail(log_path)),
                _failure_hint(log_path),
            )

    def show_info(self, log_path: Path) -> dict[str, Any]:
        """`make show-info`: Buildroot's JSON description of every enabled package."""
        cmd = self.command("show-info", args=["-s"])
        code, stdout = runner.capture(cmd, log_path, env=self.env())
        if code != 0:
            raise BuildFailed(
                f"make show-info failed (exit status {code}); the end of {log_path}:\n"
                + indent(tail(log_path)),
                _failure_hint(log_path),
            )
        try:
            data = json.loads(stdout)
        except json.JSONDecodeError as e:
            raise BuildFailed(f"make show-info printed no valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise BuildFailed("make show-info printed no JSON object")
        return data

    def build(self, log_path: Path, progress: Progress, *, targets: Sequence[str] = ()) -> None:
        """The long build: a progress bar, the full log appended to `log_path`, a precise
        failure."""
        bar = tqdm(
            total=progress.total,
            initial=len(progress.done),
            unit="pkg",
            desc=f"buildroot {' '.join(targets)}".strip(),
            dynamic_ncols=True,
            disable=progress_disabled(),
        )
        quiet_bar = bar.disable
        with bar:

            def on_line(line: str) -> None:
                seen = len(progress.started)
                step = progress.feed(line)
                if step is None:
                    return
                bar.n = len(progress.done)
                bar.set_postfix_str(str(step)[:60], refresh=True)
                # Without a bar (not a terminal, --quiet): one line per package and global step.
                if quiet_bar and (not step.package or len(progress.started) > seen):
                    log.info("[%d/%d] %s", len(progress.done), progress.total, step)

            code = runner.run(self.command(*targets), log_path, env=self.env(), on_line=on_line)
            if code == 0:
                if targets:  # a part of the build (e.g. the toolchain): count what it did
                    progress.done |= {n for n, stamp in progress.stamps.items() if stamp.exists()}
                else:
                    progress.finish()
                bar.n = len(progress.done)
                bar.set_postfix_str(f"{' '.join(targets) or 'build'} done", refresh=True)
        if code != 0:
            raise BuildFailed(
                _build_failure(progress.last, code, log_path),
                _failure_hint(log_path, progress.last),
            )


def _build_failure(last: Step | None, code: int, log_path: Path) -> str:
    if last is None:
        where = "before any package step started"
    elif last.package:
        where = f"in package {last.package} {last.version}, step: {last.action}".replace("  ", " ")
    else:
        where = f"in the global step: {last.action}"
    return (
        f"the Buildroot build failed {where} (make exit status {code})\n"
        f"last {TAIL_LINES} lines of the log:\n{indent(tail(log_path))}\n"
        f"full log: {log_path}"
    )


def _failure_hint(log_path: Path, step: Step | None = None) -> str:
    if any(_NO_SPACE in line for line in tail(log_path, 200)):
        return (
            "the disk is full: free space (a Buildroot build needs about 15 GB) and run the "
            "same command again; Buildroot resumes from the failed step"
        )
    if step is not None and step.action == "Downloading":
        return (
            "a source download failed: check the network (and proxy variables), or give a "
            "mirror with --mirror URL (Buildroot's BR2_PRIMARY_SITE), or put the file into "
            "Buildroot's download directory (BR2_DL_DIR, in fwgen's cache); then run the same "
            "command again to resume"
        )
    return (
        "fix the cause shown above and run the same command again: Buildroot resumes from the "
        "failed step (its stamps keep every finished one); --clean starts from scratch"
    )


def interrupted_message(output: Path, command: str) -> str:
    return (
        f"interrupted; {output} keeps every step Buildroot finished (its .stamp_* files). "
        f"Run `{command}` again to resume."
    )


def elapsed(start: float) -> str:
    seconds = int(time.monotonic() - start)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
