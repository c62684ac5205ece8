"""The remote engine's SSH transport: one private socket, each connection piped through the
user's ssh (here a stand-in that echoes, as `docker system dial-stdio` relays bytes)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from reprise.edges.sshdial import OWNER, PREFIX, SshDial, ssh_target, sweep_stale


def test_the_url_becomes_the_users_own_ssh_arguments() -> None:
    assert ssh_target("ssh://gpu-box") == ["--", "gpu-box"]
    assert ssh_target("ssh://me@gpu-box:2222") == ["-l", "me", "-p", "2222", "--", "gpu-box"]
    with pytest.raises(ValueError):
        ssh_target("tcp://gpu-box:2376")


def _echo(dial: SshDial, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(dial.path))

        def send() -> None:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)  # the client's half-close reaches the far end

        sender = threading.Thread(target=send)  # an echo: read while writing
        sender.start()
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


def test_each_connection_is_piped_through_ssh_and_close_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'for a in "$@"; do case $a in ControlPath=*) : > "${a#ControlPath=}";; esac; done\n'
        'case " $* " in *" -O exit "*) exit 0 ;; esac\n'
        "exec cat\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    dial = SshDial("ssh://me@gpu-box:2222")
    try:
        assert dial.url == f"unix://{dial.path}"
        assert (dial.folder.stat().st_mode & 0o777) == 0o700
        big = os.urandom(3 << 20)
        assert _echo(dial, b"hello") == b"hello"
        deadline = time.monotonic() + 10
        while dial._spare is None and time.monotonic() < deadline:  # the master is "up"
            time.sleep(0.01)
        assert dial._spare is not None  # the next connection's pipe, started ahead
        assert _echo(dial, big) == big
    finally:
        dial.close()
    assert not dial.folder.exists()
    calls = log.read_text().splitlines()
    assert all("ControlMaster=auto" in c and "-l me -p 2222 -- gpu-box" in c for c in calls)
    assert sum(c.endswith("docker system dial-stdio") for c in calls) >= 2
    assert any("-O exit" in c for c in calls)  # the shared connection ended with the session


def test_folders_of_killed_processes_are_swept_and_no_other(tmp_path: Path) -> None:
    """A reprise killed with SIGKILL runs no atexit: the next one removes what it left, and
    only that (a live maker's folder, a folder naming no maker, a link stay)."""
    import subprocess

    done = subprocess.run(["sh", "-c", "cat /proc/$$/stat"], capture_output=True, text=True)
    dead_pid = done.stdout.split()[0]
    dead_start = done.stdout[done.stdout.rfind(")") + 2 :].split()[19]
    mine = Path(f"/proc/{os.getpid()}/stat").read_text()
    mine_start = mine[mine.rfind(")") + 2 :].split()[19]
    folders = {
        "dead": f"{dead_pid} {dead_start}",
        "reused": f"{os.getpid()} {int(mine_start) - 1}",  # this pid, another process's start
        "alive": f"{os.getpid()} {mine_start}",
        "nameless": None,
    }
    for name, owner in folders.items():
        folder = tmp_path / f"{PREFIX}{name}"
        folder.mkdir()
        (folder / "docker.sock").write_text("")
        if owner is not None:
            (folder / OWNER).write_text(owner)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / OWNER).write_text(f"{dead_pid} {dead_start}")
    (tmp_path / f"{PREFIX}link").symlink_to(outside)
    assert sweep_stale(tmp_path) == 2
    left = sorted(p.name.removeprefix(PREFIX) for p in tmp_path.glob(f"{PREFIX}*"))
    assert left == ["alive", "link", "nameless"]
    assert (outside / OWNER).is_file()
