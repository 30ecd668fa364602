"""Where fwgen finds its data trees and keeps its cache."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder holding board/, br2-external/ and overlays/.

    An installed wheel carries them as fwgen/_data/; a source checkout (or an editable
    install) has them next to the package.
    """
    packaged = _PACKAGE / "_data"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent


def boards_dir() -> Path:
    return data_root() / "board"


def br2_external_dir() -> Path:
    return data_root() / "br2-external"


def overlays_dir() -> Path:
    return data_root() / "overlays"


def cache_dir() -> Path:
    """$FWGEN_CACHE_DIR, else $XDG_CACHE_HOME/fwgen, else ~/.cache/fwgen."""
    explicit = os.environ.get("FWGEN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fwgen"


def shown(path: Path) -> str:
    """A path for messages: relative to fwgen's data root when inside it (no host prefix),
    else as it is."""
    try:
        return Path(path).relative_to(data_root()).as_posix()
    except ValueError:
        return str(path)
