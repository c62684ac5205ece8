"""A remote engine over the user's own ``ssh``, with one SSH connection per session.

The Docker SDK's ``use_ssh_client`` starts a new ``ssh HOST docker system dial-stdio`` for
every API request (a new connection pool each time), so each request pays a whole SSH
handshake: a remote run made of a few dozen requests took 15-20 s where `ssh HOST docker
run` takes about one. Here the SDK talks to a private Unix socket instead; each connection
to it is one ``docker system dial-stdio`` over SSH, multiplexed (OpenSSH's ControlMaster)
over a single authenticated connection, and the SDK keeps its connections alive between
requests. Keys, agents, jump hosts and ``~/.ssh/config`` stay the user's: this is their
``ssh``, with three options added.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

_CHUNK = 1 << 16


def ssh_target(url: str) -> list[str]:
    """``ssh`` arguments naming the host of ``ssh://[user@]host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"not an ssh:// URL: {url!r}")
    args = []
    if parts.username:
        args += ["-l", parts.username]
    if parts.port:
        args += ["-p", str(parts.port)]
    return [*args, "--", parts.hostname]


PREFIX = "reprise-ssh-"
OWNER = "owner"  # "PID START": the process that made the folder (its start time, in ticks)
_SWEEP_LIMIT = 64


def _process_id(pid: int) -> str | None:
    """``pid`` and its start time (field 22 of /proc/PID/stat): a pid reused later differs."""
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_text[stat_text.rfind(")") + 2 :].split()
    return f"{pid} {fields[19]}" if len(fields) > 19 else None


def sweep_stale(tmp: Path) -> int:
    """Remove the folders of this user's reprise processes that were killed before they could
    (SIGKILL runs no atexit): each names its maker, and a maker no longer running leaves it
    behind. A folder without that name, another user's, or a link is left alone. Returns how
    many went."""
    uid, gone = os.getuid(), 0
    for n, entry in enumerate(tmp.glob(f"{PREFIX}*")):
        if n >= _SWEEP_LIMIT:
            break
        try:
            info = entry.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
                continue
            owner = (entry / OWNER).read_text()[:64].split()
        except OSError:
            continue
        if len(owner) != 2 or not owner[0].isdigit():
            continue
        if _process_id(int(owner[0])) != " ".join(owner):
            shutil.rmtree(entry, ignore_errors=True)
            gone += 1
    return gone


class SshDial:
    """A Unix socket (``path``) in a private folder; every connection made to it is piped
    through ``ssh ... HOST docker system dial-stdio`` over one shared SSH connection."""

    def __init__(self, url: str) -> None:
        sweep_stale(Path(tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX))  # mode 0700
        (self.folder / OWNER).write_text(_process_id(os.getpid()) or "")
        self.path = self.folder / "docker.sock"
        self._control = self.folder / "ctl"
        self._options = [
            "-o",
            f"ControlPath={self._control}",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=30",
        ]
        self._target = ssh_target(url)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        self._closed = False
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._spare: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="reprise-ssh-accept", daemon=True).start()
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        try:
            proc = subprocess.Popen(
                ["ssh", *self._options, *self._target, "docker", "system", "dial-stdio"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # On the terminal (it may ask for a passphrase or a host key), but Ctrl-C is
                # reprise's to handle (it stops the job through this very connection).
                preexec_fn=_ignore_sigint,  # as the Docker SDK does
            )
        except OSError:
            return None
        with self._lock:
            if self._closed:
                _end(proc)
                return None
            self._procs.add(proc)
        return proc

    def _take(self) -> subprocess.Popen[bytes] | None:
        """A pipe already started (and one more started for the next connection): a run
        makes a few dozen connections, each would otherwise wait for ssh and the remote
        docker CLI to start."""
        with self._lock:
            spare = self._spare
            self._spare = None
        proc = spare if spare is not None and spare.poll() is None else self._spawn()
        threading.Thread(target=self._refill, daemon=True).start()
        return proc

    def _refill(self) -> None:
        # Only once the shared connection is up: a second ssh started meanwhile would log in
        # on its own (asking again for whatever the first one asks).
        deadline = time.monotonic() + 30
        while not self._control.exists() and time.monotonic() < deadline and not self._closed:
            time.sleep(0.05)
        proc = self._spawn()
        if proc is None:
            return
        with self._lock:
            if self._spare is None and not self._closed:
                self._spare, proc = proc, None
        if proc is not None:
            _end(proc)
            with self._lock:
                self._procs.discard(proc)

    def _serve(self, conn: socket.socket) -> None:
        proc = self._take()
        if proc is None:
            conn.close()
            return
        upstream = threading.Thread(target=_to_ssh, args=(conn, proc), daemon=True)
        upstream.start()
        assert proc.stdout is not None
        try:
            while chunk := os.read(proc.stdout.fileno(), _CHUNK):
                conn.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            _end(proc)
            with self._lock:
                self._procs.discard(proc)

    def close(self) -> None:
        """Stop listening, end the pipes and the shared SSH connection, remove the folder."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _end(proc)
        if self._control.exists():
            subprocess.run(
                ["ssh", *self._options, "-O", "exit", *self._target],
                capture_output=True,
                check=False,
                timeout=10,
                start_new_session=True,
            )
        shutil.rmtree(self.folder, ignore_errors=True)


def _to_ssh(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    try:
        while chunk := conn.recv(_CHUNK):
            proc.stdin.write(chunk)
            proc.stdin.flush()
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # the engine sees the client's half-close


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """This pipe's ssh only (the shared connection's master lives on for the others)."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
