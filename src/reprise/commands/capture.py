"""Capturing a job's output into logs/run.log (and the terminal), exactly once per line.

logs/run.log sits in a folder the job writes: it is opened without following links, and
anything the job planted in its place is removed first (and named in the record).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from reprise.core import keys
from reprise.core.envvars import Redactor
from reprise.core.progress import Say, quiet
from reprise.edges.runfiles import open_append
from reprise.execution.backend import Backend

_CHUNK = 1 << 20


class Console:
    """The terminal, until it goes away (SSH dropped): then the run goes on without it."""

    def __init__(self, out: IO[bytes] | None, enabled: bool) -> None:
        self.out = out if out is not None else sys.stderr.buffer
        self.enabled = enabled

    def write(self, data: bytes) -> None:
        if not self.enabled or not data:
            return
        try:
            self.out.write(data)
            self.out.flush()
        except (OSError, ValueError):
            self.enabled = False


def _complete_lines(fd: int) -> int:
    """Complete lines already captured; a partial last line is cut (it is captured again)."""
    size = os.fstat(fd).st_size
    lines = 0
    last_newline = -1
    offset = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        lines += chunk.count(b"\n")
        at = chunk.rfind(b"\n")
        if at >= 0:
            last_newline = offset + at
        offset += len(chunk)
    if last_newline + 1 != size:
        os.ftruncate(fd, last_newline + 1)
    return lines


def _skip_lines(chunk: bytes, lines: int) -> tuple[bytes, int]:
    while lines and chunk:
        at = chunk.find(b"\n")
        if at < 0:
            return b"", lines
        chunk = chunk[at + 1 :]
        lines -= 1
    return chunk, lines


class LogFile:
    """logs/run.log, until the disk refuses: then the output goes on, to the terminal only,
    and the next capture (attach, wait, ls) fills the file in from the job's log."""

    def __init__(self, run_dir: Path, say: Say) -> None:
        self.say = say
        self.fd: int | None = None
        self.skip = 0
        self.planted: str | None = None
        try:
            self.fd, self.planted = open_append(run_dir, keys.RUN_LOG)
            self.skip = _complete_lines(self.fd)
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self.say(
            f"warning: cannot write {keys.RUN_LOG}: {exc.strerror or exc}; the output is kept where the job ran"
        )

    def write(self, data: bytes) -> None:
        if self.fd is None or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self._give_up(exc)

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def capture(
    backend: Backend,
    run_dir: Path,
    job: str,
    secrets: list[str],
    console: Console,
    *,
    follow: bool,
    say: Say = quiet,
    stream: Iterator[bytes] | None = None,
) -> list[str]:
    """Append to logs/run.log what the job printed beyond what is already there.

    ``stream``: an attach opened before the job started (else the backend's log). Returns
    warnings for the record (what the job had planted at logs/run.log).
    """
    redactor = Redactor(secrets)
    log = LogFile(run_dir, say)
    warnings = []
    if log.planted:
        warnings.append(f"{keys.RUN_LOG} was {log.planted} made by the job: removed, not followed")
    skip = log.skip
    try:
        for raw in stream if stream is not None else backend.logs(job, follow=follow):
            chunk = raw
            if skip:
                chunk, skip = _skip_lines(chunk, skip)
            data = redactor.feed(chunk)
            log.write(data)
            console.write(data)
        data = redactor.flush()
        log.write(data)
        console.write(data)
    finally:
        log.close()
    return warnings


def secrets_of(backend: Backend, record: dict[str, object]) -> list[str]:
    """The secret values a run was given (read back from its job), to mask them."""
    environment = record.get("environment")
    names = (
        set((environment or {}).get("secrets") or []) if isinstance(environment, dict) else set()
    )
    container = record.get("container")
    job = container.get("id") if isinstance(container, dict) else None
    if not names or not job:
        return []
    state = backend.state(str(job))
    if state is None:
        return []
    return [value for name, value in state.env.items() if name in names and value]
