"""`reprise compare`: one row per run, with the config keys that differ between the runs,
each metric's final and best value, status, verdict, and whether the run reruns or resumes
another.

A run's config.yaml may be the job's (Hydra's composed config) or a bundle's, and its
metrics are the job's: both are read bounded, never through a link, parsed without aliases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.commands.card import CONFIG_LIMIT, metrics_text
from reprise.core import keys
from reprise.core.config import load_untrusted_config_text
from reprise.core.divergence import flatten
from reprise.core.errors import ConfigError, UsageError
from reprise.core.metrics import MetricSummary, parse_records, summarize
from reprise.edges.runfiles import read_text_or_none
from reprise.edges.runstore import read_record

_MISSING = object()
# Cells a spreadsheet would run as a formula (CSV injection): written with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Compared:
    """One run as compare sees it: its record's summary, its flattened config, its metrics."""

    run_id: str
    name: str | None
    experiment: str
    status: str
    verdict: str | None
    reproduces: str | None
    resumes: str | None
    seed: int
    config: Mapping[str, Any]
    metrics: Mapping[str, MetricSummary]
    note: str | None = None  # why its config could not be compared


def load(run_dir: Path, directions: Mapping[str, str]) -> Compared:
    record = read_record(run_dir)
    note = None
    text = read_text_or_none(run_dir, keys.RUN_CONFIG, CONFIG_LIMIT)
    try:
        if text is None:
            raise ConfigError(f"{keys.RUN_CONFIG} is missing, too large or not a regular file")
        config = flatten(load_untrusted_config_text(text, source=str(run_dir / keys.RUN_CONFIG)))
    except ConfigError as exc:
        config, note = {}, f"{record['run_id']}: config not compared: {exc.message}"
    reproductions = record.get("reproductions") or []
    verdict = reproductions[-1].get("verdict") if reproductions else None
    own = (record.get("reproduction") or {}).get("verdict")  # a rerun's own verdict
    summaries = summarize(
        parse_records(metrics_text(run_dir)), directions, skip_hyperparameters=True
    )
    return Compared(
        run_id=record["run_id"],
        name=record.get("name"),
        experiment=record["experiment"],
        status=record["status"],
        verdict=str(verdict or own) if (verdict or own) else None,
        reproduces=record.get("reproduces"),
        resumes=(record.get("resumes") or {}).get("run_id"),
        seed=record["seed"],
        config=config,
        metrics={m.name: m for m in summaries},
        note=note,
    )


def _differs(values: Sequence[Any]) -> bool:
    first = values[0]
    return any(v != first or type(v) is not type(first) for v in values[1:])


def _best_key(metric: str, goal: str) -> Any:
    def key(run: Compared) -> tuple[int, float]:
        found = run.metrics.get(metric)
        if found is None:
            return (1, 0.0)  # runs without the metric last
        return (0, found.best if goal == "min" else -found.best)

    return key


def compare(
    run_dirs: Sequence[Path],
    *,
    directions: Mapping[str, str] | None = None,
    only_changed: bool = False,
    sort: str | None = None,
) -> dict[str, Any]:
    """The comparison of ``run_dirs`` (in their order, or best first by ``sort``'s best
    value), as one JSON-able object.

    ``config_keys`` are the config keys whose values differ between the runs (a key some runs
    lack differs). With ``only_changed``, metrics (and seed) whose values are the same in
    every run are left out too, and so are the columns the table would show identical.
    """
    if not run_dirs:
        raise UsageError("no runs to compare", hint="`reprise ls` lists the runs")
    runs = [load(run_dir, directions or {}) for run_dir in dict.fromkeys(run_dirs)]
    all_keys = sorted({k for run in runs for k in run.config})
    config_keys = [k for k in all_keys if _differs([run.config.get(k, _MISSING) for run in runs])]
    goals: dict[str, str] = {}
    for run in runs:
        for name, summary in run.metrics.items():
            goals.setdefault(name, summary.goal)
    metrics = sorted(goals)
    if sort is not None:
        if sort not in goals:
            raise UsageError(
                f"no run logged a metric {sort!r}",
                hint=f"metrics here: {', '.join(metrics) or 'none'}",
            )
        runs.sort(key=_best_key(sort, goals[sort]))
    if only_changed:
        metrics = [
            m
            for m in metrics
            if _differs(
                [(r.metrics[m].final, r.metrics[m].best) if m in r.metrics else None for r in runs]
            )
        ]
    seed_differs = _differs([run.seed for run in runs])
    return {
        "runs": [_run_object(run, config_keys, metrics) for run in runs],
        "config_keys": config_keys,
        "metrics": {m: goals[m] for m in metrics},
        "seed_differs": seed_differs,
        "only_changed": only_changed,
        "sort": sort,
        "notes": [run.note for run in runs if run.note],
    }


def _run_object(
    run: Compared, config_keys: Sequence[str], metrics: Sequence[str]
) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status,
        "verdict": run.verdict,
        "reproduces": run.reproduces,
        "resumes": run.resumes,
        "seed": run.seed,
        "config": {k: run.config[k] for k in config_keys if k in run.config},
        "metrics": {
            m: {
                "final": run.metrics[m].final,
                "best": run.metrics[m].best,
                "best_step": run.metrics[m].best_step,
                "goal": run.metrics[m].goal,
                "count": run.metrics[m].count,
            }
            for m in metrics
            if m in run.metrics
        },
    }


def value_text(value: Any) -> str:
    """A config value as a cell: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = value_text(value)
        return f"'{text}" if text.startswith(_FORMULA_START) else text
    return repr(value) if isinstance(value, float) else str(value)


def csv_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The comparison as CSV rows (a header first): every value whole; a text cell a
    spreadsheet would run as a formula starts with a quote."""
    config_keys = list(result["config_keys"])
    metrics = list(result["metrics"])
    header = ["run_id", "name", "experiment", "status", "verdict", "reproduces", "resumes"]
    header += ["seed", *(f"config.{k}" for k in config_keys)]
    for m in metrics:
        header += [f"{m}.final", f"{m}.best", f"{m}.best_step"]
    rows = [header]
    for run in result["runs"]:
        row: list[Any] = [run[k] for k in header[:8]]
        row += [run["config"].get(k) for k in config_keys]
        for m in metrics:
            found = run["metrics"].get(m) or {}
            row += [found.get("final"), found.get("best"), found.get("best_step")]
        rows.append([_csv_cell(v) for v in row])
    return rows
