"""Where a run's metrics are: logs/metrics.jsonl, else a ``metrics.jsonl`` the job wrote
anywhere in its folders, else the TensorBoard event files it wrote, as its manifest names
them (regular files, never read through a link)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reprise.core import keys
from reprise.core.card import plain_name
from reprise.core.errors import RecordError
from reprise.core.manifest import MAX_BYTES, Manifest
from reprise.core.metrics import pick_event_files, pick_metrics_file
from reprise.edges.runfiles import read_regular

METRICS_LIMIT = 64 << 20  # bytes of a metrics file read, or of event files all together


@dataclass(frozen=True)
class Metrics:
    """A run's metrics as JSON lines, where they came from, and what could not be read."""

    text: str
    source: str | None = None
    note: str | None = None


def _files(run_dir: Path) -> list[str]:
    """The files the run's manifest names (none while the run is going: it has none)."""
    try:
        found = read_regular(run_dir, keys.RUN_MANIFEST, MAX_BYTES)
        if found is None or found[1]:
            return []
        manifest = Manifest.from_json(found[0])
    except (OSError, ValueError, RecordError):
        return []
    return [e.path for e in manifest.files if e.kind == "file"]


def metrics_file(run_dir: Path) -> str:
    """The metrics file's path in the run (logs/metrics.jsonl when there is none: reading it
    then finds nothing). A run still going has no manifest: only logs/metrics.jsonl counts."""
    return pick_metrics_file(_files(run_dir), keys.RUN_METRICS) or keys.RUN_METRICS


def _read(run_dir: Path, rel: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a file the job wrote; None when absent or not regular."""
    try:
        found = read_regular(run_dir, rel, limit)
    except OSError:
        return None
    return None if found is None else found[0]


def run_metrics(run_dir: Path) -> Metrics:
    """The run's metrics: its metrics.jsonl's complete lines within the first METRICS_LIMIT
    bytes; else the scalars of its TensorBoard event files (the first METRICS_LIMIT bytes of
    them, all together), as the same lines; else none."""
    files = _files(run_dir)
    path = pick_metrics_file(files, keys.RUN_METRICS) or keys.RUN_METRICS
    data = _read(run_dir, path, METRICS_LIMIT)
    if data:
        if len(data) >= METRICS_LIMIT:
            data = data[: data.rfind(b"\n") + 1]
        return Metrics(data.decode("utf-8", "replace"), f"`{plain_name(path)}`")
    events = pick_event_files(files)
    if not events:
        return Metrics("")
    return _from_events(run_dir, events)


def _from_events(run_dir: Path, events: list[str]) -> Metrics:
    from reprise.edges.tbevents import TensorBoardMissing, scalar_records

    folders = sorted({rel.rpartition("/")[0] or "." for rel in events})
    where = ", ".join(f"`{plain_name(f)}`" for f in folders[:3])
    more = f" and {len(folders) - 3} more" if len(folders) > 3 else ""
    source = f"TensorBoard event files in {where}{more}"
    budget, found = METRICS_LIMIT, {}
    for rel in events:
        data = _read(run_dir, rel, budget)
        if data:
            found[rel] = data
            budget -= len(data)
        if budget <= 0:
            break
    try:
        records = scalar_records(found)
    except TensorBoardMissing:
        return Metrics(
            "",
            source,
            f"The run wrote {source[0].lower()}{source[1:]}, which this installation cannot "
            "read: install `reprise[tensorboard]` to see their metrics.",
        )
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    return Metrics(text, source)
