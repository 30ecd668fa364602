"""A serial console driver: log in, run shell commands, read their output and exit codes.

Commands go through markers (as labgrid's shell driver does): the command line prints a
random begin marker, runs the command, then prints an end marker with `$?`. Each marker is
typed split in two quoted halves, so the terminal's echo of the typed line never matches; only
the shell's output does. Every wait watches the whole stream for kernel faults too (panic,
oops, BUG, WARNING traces) and stops at once with an excerpt instead of running into its
deadline.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from dataclasses import dataclass
from typing import Protocol

import pexpect

# Kernel fault signatures, written so that a command line mentioning them (grep 'BUG:') does
# not match: each needs the text the kernel prints around the keyword.
FAULTS: tuple[tuple[str, str], ...] = (
    ("kernel panic", r"Kernel panic - not syncing"),
    ("kernel oops", r"Oops[^\r\n]*\[#\d+\]"),
    ("kernel BUG", r"\bBUG: [A-Za-z]|kernel BUG at "),
    ("kernel WARNING", r"WARNING: CPU: \d+ PID: \d+ at |WARNING: at \S+:\d+"),
)
_TRACE_END = r"---\[ end [^\r\n]*"
_EXCERPT_LINES = 60
# The end of the stream resting on a typical shell prompt; busybox's line editing follows it
# with a cursor position query (ESC [ 6 n).
_SHELL_PROMPT = r"[#$%>] *(\x1b\[[0-9;]*[A-Za-z])*$"
_ESCAPE_RE = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])")


class LogFile(Protocol):
    """Where console output is copied (pexpect's logfile_read): a text file or the like."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class ConsoleError(Exception):
    """The console did not give what a step waited for; `excerpt` is the console around it."""

    def __init__(self, message: str, excerpt: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.excerpt = excerpt


class ConsoleTimeout(ConsoleError):
    pass


class ConsoleClosed(ConsoleError):
    """The other end went away (QEMU exited)."""


class ConsoleSilent(ConsoleTimeout):
    """Nothing at all arrived on the console."""


class KernelFault(ConsoleError):
    """A panic, oops, BUG or WARNING appeared on the console."""

    def __init__(self, kind: str, excerpt: str) -> None:
        super().__init__(f"{kind} on the console", excerpt)
        self.kind = kind


class Deadline:
    """One point in time shared by every wait of a step (labgrid's Timeout, in small)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


@dataclass(frozen=True)
class CommandResult:
    output: str
    exit_code: int


class Console:
    """Drive a shell on a pexpect child (QEMU's serial console, or a test's fake)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        # pexpect waits 50 ms before every send by default; a console needs no such pause.
        child.delaybeforesend = None
        self.prompt = f"fwgen-{secrets.token_hex(3)}# "
        self._recent = ""  # the last few KB of the stream, for excerpts

    # --- waiting ---------------------------------------------------------------------------

    def expect(self, patterns: list[str], deadline: Deadline, waiting_for: str) -> re.Match:
        """Wait for the first of `patterns`; return the match.

        Raises KernelFault, ConsoleClosed, or ConsoleTimeout (naming `waiting_for`).
        """
        faults = [pattern for _, pattern in FAULTS]
        index = self.child.expect(
            [*patterns, *faults, pexpect.EOF, pexpect.TIMEOUT], timeout=deadline.remaining()
        )
        self._remember(self.child.before, self.child.after)
        if index < len(patterns):
            return self.child.match
        index -= len(patterns)
        if index < len(faults):
            raise KernelFault(FAULTS[index][0], self._fault_excerpt())
        if index == len(faults):
            raise ConsoleClosed(
                f"the console closed (QEMU exited) while waiting for {waiting_for}", self.tail()
            )
        raise ConsoleTimeout(
            f"timed out after {deadline.seconds:.0f} s waiting for {waiting_for}", self.tail()
        )

    def first_output(self, deadline: Deadline) -> None:
        """Wait until the console shows anything at all; ConsoleSilent if it does not."""
        index = self.child.expect(
            [r"(?s).", pexpect.EOF, pexpect.TIMEOUT], timeout=deadline.remaining()
        )
        self._remember(self.child.before, self.child.after)
        if index == 1:
            raise ConsoleClosed(
                "the console closed (QEMU exited) while waiting for the first console output"
            )
        if index == 2:
            raise ConsoleSilent(f"no console output in {deadline.seconds:.0f} s")

    def _remember(self, *parts: object) -> None:
        for part in parts:
            if isinstance(part, str):
                self._recent = (self._recent + part)[-16000:]

    def tail(self, lines: int = 25) -> str:
        return "\n".join(clean(self._recent).splitlines()[-lines:])

    def _fault_excerpt(self) -> str:
        """The lines before the fault, and what follows up to the end of the trace (or 5 s)."""
        before = self.tail(10)
        try:
            self.child.expect([_TRACE_END, pexpect.EOF], timeout=5)
            self._remember(self.child.before, self.child.after)
            after = self.child.before + (
                self.child.after if isinstance(self.child.after, str) else ""
            )
        except pexpect.TIMEOUT:
            after = self.child.before if isinstance(self.child.before, str) else ""
            self._remember(after)
        text = before + clean(after)
        return "\n".join(text.splitlines()[:_EXCERPT_LINES])

    # --- logging in ------------------------------------------------------------------------

    def login(
        self,
        deadline: Deadline,
        *,
        prompt: str = "login:",
        user: str = "root",
        password: str = "",
    ) -> None:
        """Wait for the login prompt, log in, and make the shell ready for `run`."""
        self.wait_for_login_prompt(deadline, prompt)
        self.log_in(deadline, user=user, password=password)

    def wait_for_login_prompt(self, deadline: Deadline, prompt: str = "login:") -> None:
        self.expect([prompt], deadline, "the login prompt")

    def log_in(self, deadline: Deadline, *, user: str = "root", password: str = "") -> None:
        """At the login prompt: log in and make the shell ready for `run`."""
        self.send_line(user)
        # Answer a password prompt if there is one; otherwise the shell is up. The shell's
        # prompt is not known yet, so the end of the stream resting on "# " or "$ " counts.
        answered = False
        while True:
            index = self.child.expect(
                [r"[Pp]assword: *$", r"Login incorrect", _SHELL_PROMPT]
                + [pexpect.TIMEOUT, pexpect.EOF],
                timeout=min(deadline.remaining(), 15.0),
            )
            self._remember(self.child.before, self.child.after)
            if index == 0 and not answered:
                self.send_line(password)
                answered = True
                continue
            if index in (0, 1):
                raise ConsoleError(f"login as {user!r} was refused", self.tail())
            if index == 4:
                raise ConsoleClosed(
                    "the console closed (QEMU exited) while logging in", self.tail()
                )
            break
        self.setup_shell(deadline)

    def setup_shell(self, deadline: Deadline) -> None:
        """Set the unique prompt; no line wrapping, so long command lines echo cleanly."""
        half = len(self.prompt) // 2
        ps1 = f"'{self.prompt[:half]}''{self.prompt[half:]}'"
        result = self.run(
            f"stty columns 1000 2>/dev/null; PS1={ps1}; PS2=''; export PS1 PS2",
            deadline,
            raw=True,
        )
        if result.exit_code != 0:
            raise ConsoleError("could not set up the shell after logging in", result.output)

    # --- commands --------------------------------------------------------------------------

    def send_line(self, text: str) -> None:
        # A serial console wants CR as the Enter key.
        self.child.send(text + "\r")

    def run(self, command: str, deadline: Deadline, *, raw: bool = False) -> CommandResult:
        """Run `command` in the target's shell; its output (\\n line ends) and exit code.

        The command runs through `eval` with stdin from /dev/null, so it may span lines,
        contain comments and quotes, and cannot eat console input. `raw` sends it as is.
        """
        token = secrets.token_hex(4)
        begin, end = f"FWB{token}", f"FWE{token}"
        body = command if raw else f"eval {shlex.quote(command)} </dev/null"
        line = f"echo '{begin[:3]}''{begin[3:]}'; {body}; echo \"{end[:3]}\"\"{end[3:]}:$?\""
        self.send_line(line)
        what = f"the command to finish: {_short(command)}"
        self.expect([re.escape(begin) + r"\r*\n"], deadline, what)
        match = self.expect([re.escape(end) + r":(\d+)"], deadline, what)
        output = self.child.before
        exit_code = int(match.group(1))
        self.expect([re.escape(self.prompt)], deadline, "the shell prompt")
        return CommandResult(clean(output).rstrip("\n"), exit_code)

    def interrupt(self, deadline: Deadline) -> bool:
        """After a timeout: Ctrl-C, then check that the shell answers again."""
        self.child.send("\x03")
        time.sleep(0.2)
        self.send_line("")
        try:
            return self.run("true", deadline).exit_code == 0
        except ConsoleError:
            return False

    def wait_closed(self, deadline: Deadline, waiting_for: str) -> None:
        """Wait until the other end closes (QEMU exits), still watching for faults."""
        try:
            self.expect([], deadline, waiting_for)
        except ConsoleClosed:
            return


def clean(text: str) -> str:
    """Console text as plain lines: no carriage returns, no terminal escape sequences.

    QEMU's stdio keeps output post-processing on, so the guest's CR LF arrives as CR CR LF;
    busybox's line editing asks for the cursor position (ESC [ 6 n) after each prompt.
    """
    return _ESCAPE_RE.sub("", text).replace("\r", "")


def _short(command: str, limit: int = 60) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."
