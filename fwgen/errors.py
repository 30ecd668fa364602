"""The one exception type for problems the user can fix (exit code 2)."""

from __future__ import annotations


class FwgenError(Exception):
    """Bad input, a missing host tool, a failed check: something the user can act on.

    `message` says what is wrong, `hint` how to fix it. The CLI prints both and exits 2,
    without a traceback unless --debug is given.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message
