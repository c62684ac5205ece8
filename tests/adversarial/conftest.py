"""The adversarial suite: a hostile job, hostile bundles and records, and bad input, played
as root against the real engine. Each test asserts the exact refusal, and that no host file
outside the runs directory and no image or tag of the engine changed.

The engine fixtures are the integration suite's (tests/engine_fixtures.py: the same
session-wide example image)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprise.edges.docker import Engine

REPRISE = [sys.executable, "-m", "reprise"]


def _describe(path: Path) -> tuple[object, ...]:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ("file", stat.S_IMODE(st.st_mode), st.st_uid, digest)
    return ("other", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))


def snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root`` (what it is, its mode, owner and content), minus ``skip``."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            path = here / name
            if path in skip:
                continue
            out[str(path.relative_to(root))] = _describe(path)
    return out


def engine_tags(engine: Engine) -> dict[str, str]:
    """Every tag of the engine, and the image it names."""
    tags: dict[str, str] = {}
    for found in engine._client.api.images():
        for tag in found.get("RepoTags") or []:
            tags[tag] = str(found["Id"])
    return tags


@pytest.fixture(scope="session", autouse=True)
def _clean_engine(no_containers_left_behind: None) -> None:
    return None


@dataclass
class Host:
    """A stand-in for the host around a project: root-only secrets, an ~/.ssh, a crontab, all
    outside the runs directory, which the test hands to reprise."""

    root: Path
    runs: Path

    @property
    def secret(self) -> Path:
        return self.root / "etc" / "secret.json"

    @property
    def crontab(self) -> Path:
        return self.root / "etc" / "crontab"

    @property
    def authorized_keys(self) -> Path:
        return self.root / ".ssh" / "authorized_keys"


@pytest.fixture()
def host(tmp_path: Path, engine: Engine) -> Iterator[Host]:
    """Host files and the engine's tags, snapshotted before the test and checked after it."""
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / ".ssh").mkdir(mode=0o700)
    h = Host(root, root / "project" / "runs")
    h.runs.mkdir(parents=True)
    h.secret.write_text('{"password": "hunter2", "status": "succeeded"}\n')
    h.secret.chmod(0o600)
    h.crontab.write_text("# root's crontab\n")
    h.crontab.chmod(0o600)
    h.authorized_keys.write_text("ssh-ed25519 AAAA owner\n")
    h.authorized_keys.chmod(0o600)
    before = snapshot(root, skip=(h.runs,))
    tags = engine_tags(engine)
    yield h
    assert snapshot(root, skip=(h.runs,)) == before, "a host file outside the runs dir changed"
    assert engine_tags(engine) == tags, "an image tag of the engine changed"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one `reprise` process."""
    done = subprocess.run(
        [*REPRISE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def run_measured(*args: str) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MiB) of one `reprise` process: the high-water mark of
    its own memory (/proc's VmHWM, read until it exits). Not wait4's ru_maxrss: Linux hands
    a child started by vfork (as subprocess does) the parent's peak at exec, so the test
    process's own size would count."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*REPRISE, *args], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        peak = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            time.sleep(0.01)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return proc.returncode, text, peak / 1024
