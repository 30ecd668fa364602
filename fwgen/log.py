"""Logging and progress settings shared by every stage."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("fwgen")

_quiet = False


def configure(*, debug: bool = False, quiet: bool = False) -> None:
    global _quiet
    _quiet = quiet
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def progress_disabled() -> bool:
    """tqdm's `disable` value: no bars with --quiet or when stderr is not a terminal."""
    return _quiet or not sys.stderr.isatty()
