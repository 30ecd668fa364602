"""FAKE serial console, for unit tests only: imitates a board booting to a login prompt.

Run on a pseudo-terminal (pexpect). It prints boot messages, a `fwgen login: ` prompt, reads
the user name, turns the terminal's echo on (a serial console echoes what is typed) and
becomes the host's /bin/sh as a login shell. In that shell `poweroff` prints the kernel's
power-down line and ends the process (QEMU exiting), `oops` prints a kernel oops trace.

FAKE_CONSOLE_MODE changes the story:
  login     (default) as above
  qemu      like login, but the way busybox's shell looks through QEMU's stdio: CR CR LF
            line ends, and a cursor position query (ESC [ 6 n) after every prompt; each typed
            line runs in a fresh host sh (only PS1 is carried over)
  password  asks "Password:" after the user name and wants "secret"
  nologin   prints boot messages, then nothing, forever (a rootfs without a getty)
  silent    prints nothing on the console, ever (a kernel that cannot talk), and QEMU's
            host-side audio complaints on stderr
  panic     prints a kernel panic after the boot messages and hangs (as a panicked kernel)
  badarg    prints an error on stderr and exits 1 at once (QEMU refusing its arguments)
It also works as a fake `qemu-system-arm` (arguments are then ignored, except for badarg).
FAKE_CONSOLE_BOOT_DELAY (seconds) waits that long between the boot messages and the prompt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import termios
import time

BOOT = """\
Booting Linux on physical CPU 0x0
Linux version 6.1.0-fake (fake@fake) #1 SMP
Run /init as init process
Starting myevent: OK

Welcome to a FAKE console
"""

PANIC = """\
Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-fake #1
Hardware name: ARM-Versatile Express
---[ end Kernel panic - not syncing: No working init found. ]---
"""

# What QEMU 7.2 prints on stderr on a host without sound (Debian 12, no qemu-system-gui).
NOISE = """\
qemu: module audio-audio-pa not found, do you want to install qemu-system-gui package?
ALSA lib confmisc.c:855:(parse_card) cannot find card '0'
alsa: Could not initialize DAC
alsa: Failed to open `default':
audio: Failed to create voice `lm4549.out'
"""

SHELL_RC = """\
poweroff() { echo "reboot: Power down"; exit 0; }
oops() {
  echo "Internal error: Oops: 817 [#1] SMP ARM"
  echo "PC is at fake_function+0x10/0x20"
  echo "---[ end trace 0000000000000000 ]---"
}
"""


def say(text: str) -> None:
    os.write(1, text.encode())


def main() -> int:
    mode = os.environ.get("FAKE_CONSOLE_MODE", "login")
    if mode == "badarg":
        sys.stderr.write("qemu-system-arm: -bogus: invalid option\n")
        return 1
    if mode == "silent":
        sys.stderr.write(NOISE)
        sys.stderr.flush()
        time.sleep(3600)
        return 0
    say(BOOT)
    if mode == "panic":
        say(PANIC)
        time.sleep(3600)
        return 0
    if mode == "nologin":
        time.sleep(3600)
        return 0
    time.sleep(float(os.environ.get("FAKE_CONSOLE_BOOT_DELAY", "0")))
    say("\nfwgen login: ")
    user = sys.stdin.readline().strip()
    if mode == "password":
        say("Password: ")
        if sys.stdin.readline().strip() != "secret":
            say("\nLogin incorrect\n")
            return 1
    if user != "root":
        say("\nLogin incorrect\n")
        return 1
    attrs = termios.tcgetattr(0)
    attrs[3] |= termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    if mode == "qemu":
        return qemu_style_shell()
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as rc:
        rc.write(SHELL_RC)
    os.dup2(1, 2)  # the guest's shell talks on the console, not on QEMU's stderr
    # A shell on a real console starts with default signal dispositions, whatever this fake
    # inherited (a test run started as a background job ignores SIGINT): Ctrl-C must work.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    env = {"PATH": "/usr/bin:/bin", "ENV": rc.name, "PS1": "# ", "HOME": "/"}
    os.execve("/bin/sh", ["sh", "-i"], env)
    return 1


def qemu_style_shell() -> int:
    attrs = termios.tcgetattr(1)
    attrs[1] &= ~termios.ONLCR  # this fake writes its own line ends
    termios.tcsetattr(1, termios.TCSANOW, attrs)

    def out(text: str) -> None:
        os.write(1, text.replace("\n", "\r\r\n").encode())

    ps1 = "# "
    out(f"\nBusyBox v1.35.0 built-in shell (ash)\n\n{ps1}\x1b[6n")
    for line in sys.stdin:
        line = line.strip()
        if line == "poweroff":
            out("reboot: Power down\n")
            return 0
        script = f'{line}\nprintf "\\036%s" "$PS1"'
        done = subprocess.run(
            ["sh", "-c", script],
            env={"PATH": "/usr/bin:/bin", "PS1": ps1},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        text, _, ps1 = (done.stdout + done.stderr).rpartition("\036")
        out(f"{text}{ps1}\x1b[6n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
