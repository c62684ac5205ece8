"""The first process of a Slurm node's container (Docker, Podman): it runs the node's command
and ties the container's life to its own standard input, a pipe the node's part of the job
holds open.

When that input ends (the node's part or its ``docker run`` killed outright: Slurm's SIGKILL,
a lost slurmd's step ended), the command gets SIGTERM and, the grace later, SIGKILL with
everything else in the container. As the container's init this process cannot be killed from
inside (the kernel drops the signals a PID namespace's members send its init, unless it
handles them, and SIGKILL never), and its exit ends the namespace: the job cannot cut the tie.
It also passes SIGTERM, SIGINT, SIGHUP and SIGQUIT on to the command (``docker stop``), reaps
orphans, and exits with the command's status (128 + N for a signal, as a shell says it),
ending what the command left running.

    python -S -m reprise_runtime.lifeline [--grace SECONDS] -- COMMAND [ARG...]

``-S``: no sitecustomize (no seeding, no runtime record: this is not the job). Standard
library only; the command's stdin is /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

GRACE_S = 10.0
PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def exit_status(wait_status: int) -> int:
    """A child's wait status as a shell reports it."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _start(command: list[str]) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: default signals, its own process group, no lifeline on its stdin
        signal.set_wakeup_fd(-1)
        for sig in (*PASSED_ON, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.execvp(command[0], command)  # noqa: S606 (the command, exactly as given)
    except OSError as exc:
        print(f"reprise lifeline: {command[0]}: {exc.strerror or exc}", file=sys.stderr)
    os._exit(127)


def _kill_all(pid: int) -> None:
    """SIGKILL to the command's process group, and as init to every process of the container."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    if os.getpid() == 1:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)


def run(command: list[str], grace_s: float = GRACE_S) -> int:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)  # a signal makes the wait below return
    pending: list[int] = []
    for sig in PASSED_ON:
        signal.signal(sig, lambda number, _frame: pending.append(number))
    signal.signal(signal.SIGCHLD, lambda _number, _frame: None)
    pid = _start(command)
    watching, deadline = True, None
    while True:
        while True:  # reap whatever ended: the command, or an orphan left to init
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is None:
                break
            if info.si_pid == pid:  # still a zombie: its group is still its own to end
                _kill_all(pid)  # what it left running goes with it, as with a container
                return exit_status(os.waitpid(pid, 0)[1])
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)
        while pending:
            with contextlib.suppress(OSError):
                os.kill(pid, pending.pop(0))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select([wake_r, *([0] if watching else [])], [], [], timeout)[0]
        if wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(wake_r, 512)
        if watching and 0 in ready:
            try:
                ended_input = not os.read(0, 4096)
            except OSError:
                ended_input = True
            if ended_input:  # the node's part is gone
                watching, deadline = False, time.monotonic() + grace_s
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        if deadline is not None and time.monotonic() >= deadline:
            deadline = None
            _kill_all(pid)


def main(argv: list[str]) -> int:
    grace = GRACE_S
    if argv[:1] == ["--grace"] and len(argv) > 1:
        grace, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return run(argv, grace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
