"""What a build records for the next run's rebuild planner: its `state.json`.

Both build kinds keep the same record: the format version, the inputs of the last build
started in that directory and whether that build completed. Each kind has its own typed
inputs (`fwgen.rebuild.Inputs` for Buildroot, `fwgen.kernelplan.Inputs` for the kernel-only
build); the layout gives each kind its own file, so one is never read as the other. A record
of another version, or one that cannot be read, counts as none: the planner starts afresh.
The record is written atomically: an interrupted write leaves the previous one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fwgen import fsutil

VERSION = 1


class Recordable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


InputsT = TypeVar("InputsT", bound=Recordable)


@dataclass(frozen=True)
class State(Generic[InputsT]):
    inputs: InputsT
    complete: bool  # False while a build runs, or after it failed or was interrupted

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "complete": self.complete, "inputs": self.inputs.to_json()}


def load(path: Path, read_inputs: Callable[[Mapping[str, Any]], InputsT]) -> State[InputsT] | None:
    """The recorded state, or None when there is none, it is of another version or it cannot
    be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    complete = data.get("complete")
    if not isinstance(complete, bool) or not isinstance(data.get("inputs"), Mapping):
        return None
    try:
        return State(read_inputs(data["inputs"]), complete)
    except (KeyError, TypeError, ValueError):
        return None


def save(path: Path, state: State[Any]) -> None:
    fsutil.write_atomic(path, json.dumps(state.to_json(), indent=2) + "\n", mode=0o644)


def forget(path: Path) -> None:
    """No record: the next run starts afresh (used while what it would describe changes)."""
    Path(path).unlink(missing_ok=True)
