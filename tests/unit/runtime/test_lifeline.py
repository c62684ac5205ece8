"""The first process of a Slurm node's container, run here as a plain child process (not a
PID namespace's init: that it cannot be killed from inside is the integration tests')."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reprise_runtime
from reprise_runtime.lifeline import exit_status

LIFELINE = [sys.executable, "-S", "-m", "reprise_runtime.lifeline"]
# -S leaves site-packages out: the package is found by PYTHONPATH, as in an image.
PATH = str(Path(reprise_runtime.__file__).parent.parent)


def _lifeline(command: str, grace: str = "1") -> tuple[subprocess.Popen[bytes], int]:
    """``sh -c command`` under the lifeline, its stdin a pipe; the write end returned."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        [*LIFELINE, "--grace", grace, "--", "sh", "-c", command],
        stdin=read,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": PATH},
    )
    os.close(read)
    return proc, write


def test_the_end_of_its_input_stops_the_command() -> None:
    """The part's end (the pipe closed) is a TERM to the command, whose status it exits with;
    the command's own stdin is /dev/null, not the lifeline."""
    proc, write = _lifeline('trap "echo term; exit 7" TERM; read -r x || echo eof; sleep 30 & wait')
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"eof\n"  # its input is empty, not the open pipe
    time.sleep(0.3)
    assert proc.poll() is None  # it lives while the pipe is open
    os.close(write)
    assert proc.wait(timeout=10) == 7
    assert proc.stdout.read() == b"term\n"


def test_a_command_that_ignores_term_is_killed_after_the_grace() -> None:
    proc, write = _lifeline('trap "" TERM; echo up; while :; do sleep 0.2; done')
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    started = time.monotonic()
    os.close(write)
    assert proc.wait(timeout=10) == 128 + signal.SIGKILL  # as a shell says it
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_it_is_passed_on_and_the_status_comes_back(sig: signal.Signals) -> None:
    """``docker stop`` signals the container's first process: the command must get it."""
    proc, write = _lifeline(f'trap "echo got; exit 3" {sig.name[3:]}; echo up; sleep 30 & wait')
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 3
    assert proc.stdout.read() == b"got\n"
    os.close(write)


def test_the_commands_status_is_its_own() -> None:
    proc, write = _lifeline("exit 42")
    assert proc.wait(timeout=10) == 42
    os.close(write)
    missing, write2 = _lifeline("exec /nonexistent/command")
    assert missing.wait(timeout=10) == 127
    os.close(write2)


def test_exit_status_reads_signals_as_a_shell_does() -> None:
    assert exit_status(3 << 8) == 3
    assert exit_status(signal.SIGKILL) == 137
