"""Reading a run's ``logs/metrics.jsonl``: series, final and best values. Pure.

Whether lower or higher is better is declared per metric (``metrics = { val_loss = "min" }``
in ``[tool.reprise]``) and guessed from the name only for the others.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprise.core.errors import SettingsError

STEP_KEYS = ("step", "epoch", "iteration")
LOWER_IS_BETTER = ("loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse")
GOALS = ("min", "max")
MAX_METRIC_NAME = 128
# Values a training logs beside its metrics that are settings, not results (a learning rate
# schedule): left out of comparisons unless declared as metrics.
HYPERPARAMETER = re.compile(
    r"(?:^|[._/-])(?:lr|learning[_-]?rate|momentum|weight[_-]?decay|wd)(?:$|[._/-])", re.I
)


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


def parse_directions(key: str, value: object) -> dict[str, str]:
    """``[tool.reprise] metrics = { name = "min" | "max" }``, checked."""
    if not isinstance(value, dict):
        raise SettingsError(
            f'[tool.reprise] {key} must be a table of metric = "min" or "max"',
            key=key,
            value=value,
            hint='e.g. metrics = { val_loss = "min", acc = "max" }',
        )
    out: dict[str, str] = {}
    for name, goal in value.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_METRIC_NAME:
            raise SettingsError(
                f"[tool.reprise] {key}: {name!r} is not a metric name (1 to "
                f"{MAX_METRIC_NAME} characters)",
                key=key,
                value=name,
            )
        if goal not in GOALS:
            raise SettingsError(
                f"[tool.reprise] {key}: {name} = {goal!r} is not a direction",
                key=key,
                value=goal,
                hint='"min": lower is better (a loss); "max": higher is better (an accuracy)',
            )
        out[name] = str(goal)
    return out


def is_hyperparameter(name: str) -> bool:
    return HYPERPARAMETER.search(name) is not None


def summarize(
    records: list[dict[str, Any]],
    directions: Mapping[str, str] | None = None,
    *,
    skip_hyperparameters: bool = False,
) -> list[MetricSummary]:
    """Final and best value of each metric: best by its declared direction, else by its name;
    with ``skip_hyperparameters``, learning rates and the like (undeclared) are left out."""
    declared = directions or {}
    summaries = []
    for name, points in series(records).items():
        if skip_hyperparameters and name not in declared and is_hyperparameter(name):
            continue
        goal = declared.get(name) or goal_of(name)
        pick = min if goal == "min" else max
        best_step, best = pick(points, key=lambda p: p[1])
        summaries.append(MetricSummary(name, points[-1][1], best, best_step, goal, len(points)))
    return summaries


METRICS_FILE = "metrics.jsonl"


def pick_metrics_file(paths: Sequence[str], preferred: str) -> str | None:
    """Which of a run's files holds its metrics: ``preferred`` (logs/metrics.jsonl) when it
    is among ``paths``, else a ``metrics.jsonl`` anywhere, the shallowest first, then by path
    (a script that writes $REPRISE_OUTPUTS/metrics.jsonl, or outputs/eval/metrics.jsonl)."""
    if preferred in paths:
        return preferred
    found = [p for p in paths if p.rsplit("/", 1)[-1] == METRICS_FILE]
    return min(found, key=lambda p: (p.count("/"), p)) if found else None


MAX_EVENT_FILES = 64


def pick_event_files(paths: Sequence[str]) -> list[str]:
    """A run's TensorBoard event files (``events.out.tfevents.*``), by path, at most
    MAX_EVENT_FILES."""
    found = [p for p in paths if p.rsplit("/", 1)[-1].startswith("events.out.tfevents.")]
    return sorted(found)[:MAX_EVENT_FILES]
