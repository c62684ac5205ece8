"""Where a run's metrics are: logs/metrics.jsonl, else a ``metrics.jsonl`` the job wrote
anywhere in its folders, as its manifest names it (a regular file, never through a link)."""

from __future__ import annotations

from pathlib import Path

from reprise.core import keys
from reprise.core.errors import RecordError
from reprise.core.manifest import MAX_BYTES, Manifest
from reprise.core.metrics import pick_metrics_file
from reprise.edges.runfiles import read_regular


def metrics_file(run_dir: Path) -> str:
    """The metrics file's path in the run (logs/metrics.jsonl when there is none: reading it
    then finds nothing). A run still going has no manifest: only logs/metrics.jsonl counts."""
    try:
        found = read_regular(run_dir, keys.RUN_MANIFEST, MAX_BYTES)
        if found is None or found[1]:
            return keys.RUN_METRICS
        manifest = Manifest.from_json(found[0])
    except (OSError, ValueError, RecordError):
        return keys.RUN_METRICS
    files = [e.path for e in manifest.files if e.kind == "file"]
    return pick_metrics_file(files, keys.RUN_METRICS) or keys.RUN_METRICS
