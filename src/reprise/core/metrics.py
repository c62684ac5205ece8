"""Reading a run's ``logs/metrics.jsonl``: series, final and best values. Pure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

STEP_KEYS = ("step", "epoch", "iteration")
LOWER_IS_BETTER = ("loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse")


@dataclass(frozen=True)
class MetricSummary:
    name: str
    final: float
    best: float
    best_step: float | None
    goal: str  # "min" or "max"
    count: int


def parse_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # the job wrote it: any line, however nested
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def numeric(value: Any) -> float | None:
    """A finite float, or None (not a number, or an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def series(records: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """name -> [(step, value)], the step being ``step`` (else ``epoch``, else the line index)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for i, record in enumerate(records):
        x = next(
            (numeric(record[k]) for k in STEP_KEYS if numeric(record.get(k)) is not None), None
        )
        x = float(i) if x is None else x
        for key, value in record.items():
            if key in STEP_KEYS:
                continue
            number = numeric(value)
            if number is not None:
                out.setdefault(key, []).append((x, number))
    return dict(sorted(out.items()))


def step_name(records: list[dict[str, Any]]) -> str:
    """What :func:`series` took as the x of the first record that had one: the training curves'
    x-axis label."""
    for record in records:
        for key in STEP_KEYS:
            if numeric(record.get(key)) is not None:
                return key
    return "record"


def goal_of(name: str) -> str:
    lowered = name.lower()
    return "min" if any(word in lowered for word in LOWER_IS_BETTER) else "max"


def summarize(records: list[dict[str, Any]]) -> list[MetricSummary]:
    summaries = []
    for name, points in series(records).items():
        goal = goal_of(name)
        pick = min if goal == "min" else max
        best_step, best = pick(points, key=lambda p: p[1])
        summaries.append(MetricSummary(name, points[-1][1], best, best_step, goal, len(points)))
    return summaries
