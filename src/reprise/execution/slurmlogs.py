"""A Slurm run's output as one stream: each rank's ``logs/rank-K.log`` (written by the job) and
the batch step's ``slurm/job.out`` (Slurm's, torchrun's, the node's), line by line, each line
prefixed with where it came from when there is more than one rank (``[rank K] ``, ``[slurm] ``).

Rank logs sit in a folder the job writes: each is opened once, without following a link, as a
regular single-link file (``edges.runfiles``), and read through that descriptor only.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.record import load_json
from reprise.core.sbatch import EXIT, OUTPUT, SLURM_DIR
from reprise.core.slurm import MAX_NODES, parse_node_host, requeues
from reprise.edges.runfiles import open_regular, read_regular

_RANK_LOG = re.compile(r"rank-([0-9]{1,6})(?:\.restart-([1-9][0-9]{0,3}))?\.log")
_CHUNK = 1 << 20
MAX_PENDING = 1 << 20  # a line longer than this is passed on in pieces
MAX_DRAIN_PASSES = 4096  # reads of every source once the job has ended
MAX_RANK_LOGS = 1024


class _Source:
    def __init__(self, rel: str, prefix: bytes) -> None:
        self.rel, self.prefix = rel, prefix
        self.fd: int | None = None
        self.pending = b""

    def read(self, run_dir: Path) -> bytes:
        """The complete lines written since the last read, prefixed."""
        if self.fd is None:
            try:
                self.fd = open_regular(run_dir, self.rel)
            except FileNotFoundError:
                return b""
            except OSError:  # planted by the job: not followed
                self.fd = -1
        if self.fd < 0:
            return b""
        data = os.read(self.fd, _CHUNK)  # at most this much a pass: memory stays bounded
        if not data:
            return b""
        text = self.pending + data
        cut = text.rfind(b"\n") + 1
        if cut == 0 and len(text) > MAX_PENDING:
            cut = len(text)
        self.pending = text[cut:]
        return self._prefixed(text[:cut])

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return self._prefixed(rest + b"\n") if rest else b""

    def _prefixed(self, text: bytes) -> bytes:
        if not self.prefix or not text:
            return text
        lines = text.split(b"\n")
        body = b"\n".join(self.prefix + line if line else line for line in lines[:-1])
        return body + b"\n" + lines[-1]

    def close(self) -> None:
        if self.fd is not None and self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None


_NODE_EXIT = re.compile(r"node-([0-9]{1,6})\.exit")
_SMALL = 256  # an exit file is "STATUS OOM" or "STATUS"
_HOST_LIMIT = 16 << 10
_OUTPUT_LIMIT = 8 << 20  # the batch output read for requeue reasons (rank output is elsewhere)


def _small(run_dir: Path, rel: str) -> str | None:
    """A short file the batch step wrote, read without following links; None if absent,
    planted or too long."""
    with contextlib.suppress(OSError):
        found = read_regular(run_dir, rel, _SMALL)
        if found is not None and not found[1]:
            return found[0].decode("ascii", errors="replace")
    return None


def node_oom(run_dir: Path) -> bool:
    """Whether a node's container was killed for memory (its part's exit file says so)."""
    try:
        names = [e.name for e in (run_dir / SLURM_DIR).iterdir()]
    except OSError:
        return False
    for name in sorted(n for n in names if _NODE_EXIT.fullmatch(n))[:MAX_NODES]:
        text = _small(run_dir, f"{SLURM_DIR}/{name}")
        if text is not None and text.split()[1:2] == ["true"]:
            return True
    return False


def node_hosts(run_dir: Path, nodes: int) -> list[dict[str, Any]]:
    """What each node's part wrote of its node (``slurm/node-K.host``), in node order."""
    found = []
    for node in range(min(nodes, MAX_NODES)):
        with contextlib.suppress(OSError):
            text = read_regular(run_dir, f"{SLURM_DIR}/node-{node}.host", _HOST_LIMIT)
            if text is not None and not text[1]:
                found.append(parse_node_host(text[0].decode("utf-8", errors="replace")))
    return found


def rank_records(run_dir: Path, world_size: int, limit: int) -> dict[int, dict[str, Any]]:
    """Each rank's runtime record (``runtime/rank-K.json``) that is there and is a JSON object,
    read bounded and never followed."""
    found: dict[int, dict[str, Any]] = {}
    for rank in range(min(world_size, MAX_RANK_LOGS)):
        with contextlib.suppress(OSError, ValueError):
            text = read_regular(run_dir, f"{keys.RUN_RUNTIME_DIR}/rank-{rank}.json", limit)
            if text is not None and not text[1]:
                record = load_json(text[0], limit=limit, what=f"runtime/rank-{rank}.json")
                if isinstance(record, dict):
                    found[rank] = record
    return found


def batch_exit(run_dir: Path, default: int) -> int:
    """The batch step's exit status, as its script wrote it."""
    text = _small(run_dir, EXIT)
    if text is not None and text.strip().isdigit() and len(text.strip()) <= 3:
        return int(text.strip())
    return default


def rank_logs(run_dir: Path) -> list[tuple[int, int]]:
    """The (restart, rank) of each rank log in logs/ now: restart 0 is the job's first attempt
    (``rank-K.log``), N its Nth restart after a requeue (``rank-K.restart-N.log``)."""
    try:
        found = [p.name for p in (run_dir / "logs").iterdir()]
    except OSError:
        return []
    logs = sorted(
        (int(m.group(2) or 0), int(m.group(1))) for n in found if (m := _RANK_LOG.fullmatch(n))
    )
    return logs[:MAX_RANK_LOGS]  # the job may plant many: followed up to a bound


def _rank_source(restart: int, rank: int) -> tuple[str, str]:
    if not restart:
        return f"logs/rank-{rank}.log", f"[rank {rank}] "
    return f"logs/rank-{rank}.restart-{restart}.log", f"[rank {rank}, restart {restart}] "


def job_requeues(run_dir: Path, restarts: int) -> list[dict[str, Any]]:
    """A requeued job's restarts, each with Slurm's reason as the batch output says it (read
    bounded, never followed)."""
    text = b""
    with contextlib.suppress(OSError):
        found = read_regular(run_dir, OUTPUT, _OUTPUT_LIMIT)
        text = found[0] if found is not None else b""
    return requeues(text.decode("utf-8", errors="replace"), restarts)


FAST_RANKS = 8


def merged_output(
    run_dir: Path,
    world_size: int,
    *,
    ended: Callable[[], bool] | None,
    every: float = 0.25,
    check_every: float = 1.0,
) -> Iterator[bytes]:
    """The run's output so far, and (with ``ended``) until ``ended()`` is true: then once more
    everything the files hold, and the stream ends. The files are read every ``every``
    seconds; for a job of at most FAST_RANKS ranks every 50 ms in the first 30 s (its first
    lines show as they come; a queued job's files, or a large job's, are not read that often)."""
    many = world_size > 1
    sources: dict[str, _Source] = {}

    def add(rel: str, prefix: str) -> None:
        if rel not in sources:
            sources[rel] = _Source(rel, prefix.encode() if many else b"")

    add(OUTPUT, "[slurm] ")
    last_check, began, fast = 0.0, time.monotonic(), world_size <= FAST_RANKS
    try:
        while True:
            for restart, rank in [*((0, r) for r in range(world_size)), *rank_logs(run_dir)]:
                add(*_rank_source(restart, rank))
            finished = ended is None
            if not finished and time.monotonic() - last_check >= check_every:
                last_check = time.monotonic()
                finished = bool(ended and ended())
            out = b"".join(s.read(run_dir) for s in sources.values())
            if out:
                yield out
            if finished:
                for restart, rank in rank_logs(run_dir):
                    add(*_rank_source(restart, rank))
                for _ in range(MAX_DRAIN_PASSES):  # a piece at a time; a writer that goes on
                    rest = b"".join(s.read(run_dir) for s in sources.values())  # (a lost node's
                    if not rest:  # container) cannot hold the run's end forever
                        break
                    yield rest
                rest = b"".join(s.flush() for s in sources.values())
                if rest:
                    yield rest
                return
            if not out:
                time.sleep(0.05 if fast and time.monotonic() - began < 30 else every)
    finally:
        for source in sources.values():
            source.close()
