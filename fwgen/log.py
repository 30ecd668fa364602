"""Logging and progress settings shared by every stage."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("fwgen")

_quiet = False


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a message is logged, not as it was when fwgen's
    command line configured logging: a caller (a test's capture, an embedding program) may
    have replaced it since, and the old stream may be closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def configure(*, debug: bool = False, quiet: bool = False) -> None:
    global _quiet
    _quiet = quiet
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def progress_disabled() -> bool:
    """tqdm's `disable` value: no bars with --quiet or when stderr is not a terminal."""
    return _quiet or not sys.stderr.isatty()
