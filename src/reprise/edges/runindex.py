"""Listing runs fast: one summary per run, cached in a derived index beside the runs.

The index (``<runs-dir>/.index.json``) is only a cache of what the run.json files say, keyed
by each file's size and mtime: it is rebuilt for any run whose record changed, may be deleted
at any time, and concurrent writers simply replace it whole (atomic rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from reprise.core import keys, names
from reprise.core.errors import RecordError, UsageError
from reprise.core.progress import Say, quiet
from reprise.core.record import MAX_RECORD_BYTES, parse_record
from reprise.edges.runstore import atomic_write

INDEX_NAME = ".index.json"
INDEX_VERSION = 3


def summarize_record(record: dict[str, Any]) -> dict[str, Any]:
    reproductions = record.get("reproductions") or []
    notes = record.get("notes") or []
    return {
        "run_id": record.get("run_id"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "exit_code": record.get("exit_code"),
        "reason": record.get("reason"),
        "created_at": record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "duration_s": record.get("duration_s"),
        "seed": record.get("seed"),
        "command": record.get("command"),
        "commit": (record.get("code") or {}).get("commit"),
        "image": (record.get("image") or {}).get("tag"),
        "image_id": (record.get("image") or {}).get("id"),
        "reproduces": record.get("reproduces"),
        "resumes": (record.get("resumes") or {}).get("run_id"),
        "last_verdict": reproductions[-1]["verdict"] if reproductions else None,
        "verdict": (record.get("reproduction") or {}).get("verdict"),
        "name": record.get("name"),
        "tags": list(record.get("tags") or []),
        "note": notes[-1].get("text") if notes else None,
        "notes": len(notes),
        "sweep": (record.get("sweep") or {}).get("id"),
        "sweep_index": (record.get("sweep") or {}).get("index"),
    }


def _scan(runs_dir: Path) -> list[tuple[str, os.stat_result]]:
    found = []
    try:
        experiments = list(os.scandir(runs_dir))
    except FileNotFoundError:
        return []
    for exp in experiments:
        if not names.EXPERIMENT.fullmatch(exp.name) or not exp.is_dir(follow_symlinks=False):
            continue
        for run in os.scandir(exp.path):
            if not names.RUN_ID.fullmatch(run.name) or not run.is_dir(follow_symlinks=False):
                continue
            try:
                st = os.lstat(f"{run.path}/{keys.RUN_JSON}")
            except (FileNotFoundError, NotADirectoryError):
                continue
            found.append((f"{exp.name}/{run.name}", st))
    return found


def _load_index(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    runs = data.get("runs")
    return runs if isinstance(runs, dict) else {}


def all_summaries(runs_dir: Path, warn: Say = quiet) -> list[dict[str, Any]]:
    """Every run's summary, newest first (run ids sort by time). A run.json that is damaged
    or not a valid record is skipped, with a warning through ``warn``."""
    index_path = runs_dir / INDEX_NAME
    cached = _load_index(index_path)
    fresh: dict[str, Any] = {}
    changed = False
    for rel, st in _scan(runs_dir):
        entry = cached.get(rel)
        stamp = [st.st_size, st.st_mtime_ns]
        if not (isinstance(entry, dict) and isinstance(entry.get("summary"), dict)):
            entry = None
        if entry is None or entry.get("stamp") != stamp:
            path = runs_dir / rel / keys.RUN_JSON
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORD_BYTES:
                warn(f"warning: skipped {rel}: its run.json is not a regular file of sane size")
                continue
            try:
                record = parse_record(path.read_bytes(), source=str(path))
            except OSError:
                continue  # removed meanwhile
            except RecordError as exc:
                warn(f"warning: skipped {rel}: {exc.message}")
                continue
            entry = {"stamp": stamp, "summary": summarize_record(record)}
            changed = True
        fresh[rel] = entry
    if changed or fresh.keys() != cached.keys():
        # A read-only runs directory: listing still works, just without the cache.
        with contextlib.suppress(OSError):
            atomic_write(
                index_path,
                json.dumps({"version": INDEX_VERSION, "runs": fresh}, sort_keys=True),
                durable=False,
            )
    base = str(runs_dir)  # string joins: 10,000 Path objects cost more than the listing
    summaries = [dict(e["summary"], path=f"{base}/{rel}") for rel, e in fresh.items()]
    summaries.sort(
        key=lambda s: (str(s.get("run_id") or ""), str(s.get("experiment") or "")), reverse=True
    )
    return summaries


def filter_runs(
    summaries: list[dict[str, Any]],
    *,
    experiment: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    tag: str | None = None,
    sweep: str | None = None,
) -> list[dict[str, Any]]:
    out = [
        s
        for s in summaries
        if (experiment is None or s["experiment"] == experiment)
        and (status is None or s["status"] == status)
        and (tag is None or tag in (s.get("tags") or []))
        and (sweep is None or s.get("sweep") == sweep)
    ]
    return out[:limit] if limit else out


def sweep_of(summaries: list[dict[str, Any]], ref: str) -> str | None:
    """The sweep id ``ref`` names among ``summaries``: the id itself, its random suffix (the
    last 8 hex digits) or ``latest`` (the newest sweep); None when none matches.
    Ambiguous suffixes are an error."""
    ids = list(dict.fromkeys(s["sweep"] for s in summaries if s.get("sweep")))  # newest first
    if ref == "latest":
        return ids[0] if ids else None
    if ref in ids:
        return ref
    matches = [i for i in ids if i.endswith(f"-{ref}")] if names.RUN_SUFFIX.fullmatch(ref) else []
    if len(matches) > 1:
        raise UsageError(f"sweep {ref!r} is ambiguous: {', '.join(matches)}")
    return matches[0] if matches else None


def list_runs(
    runs_dir: Path,
    *,
    experiment: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    return filter_runs(all_summaries(runs_dir), experiment=experiment, status=status, limit=limit)
