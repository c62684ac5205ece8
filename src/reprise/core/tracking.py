"""What a finished run looks like to an experiment tracker (MLflow, TensorBoard, W&B). Pure:
the record, the frozen config and the metrics go in, one :class:`Export` comes out, and each
tracker's writer (``edges.trackers``) only copies it across.

Runs have no network, so nothing is logged while they train: a run is exported afterwards,
from its record, and the same record always gives the same export.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reprise.core.metrics import STEP_KEYS, numeric

TARGETS = ("mlflow", "tensorboard", "wandb")
# The strictest of the three trackers' limits (MLflow's), so that one export fits all.
MAX_KEY = 250
MAX_VALUE = 6000
MAX_PARAMS = 2000
MAX_METRIC_NAMES = 1000
MAX_POINTS = 200_000
_KEY_CHARS = re.compile(r"[^\w./\- ]")
# MLflow status of each reprise status.
TRACKER_STATUS = {
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
    "lost": "FAILED",
    "running": "RUNNING",
}


@dataclass(frozen=True)
class Export:
    run_id: str
    experiment: str
    status: str  # reprise's
    start_ms: int
    end_ms: int | None
    params: dict[str, str]  # MLflow's: strings
    config: dict[str, Any]  # the same keys, values as typed as JSON allows (W&B's config)
    tags: dict[str, str]
    # name -> [(step, value)], steps whole numbers, increasing
    metrics: dict[str, list[tuple[int, float]]]
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def tracker_status(self) -> str:
        return TRACKER_STATUS.get(self.status, "FAILED")

    def steps(self) -> list[tuple[int, dict[str, float]]]:
        """The metrics grouped by step, steps in order: what W&B's ``log`` takes."""
        by_step: dict[int, dict[str, float]] = {}
        for name, points in self.metrics.items():
            for step, value in points:
                by_step.setdefault(step, {})[name] = value
        return sorted(by_step.items())


def clean_key(key: str) -> str:
    """A name every tracker accepts: letters, digits, ``_ - . /`` and spaces, bounded, as a
    normalised relative path (MLflow refuses ``val/``, ``a//b`` and ``./x``)."""
    name = _KEY_CHARS.sub("_", key)[:MAX_KEY]
    name = "/".join(part for part in name.split("/") if part not in ("", ".", ".."))
    return name.lstrip(".") or "_"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.01}}`` -> ``{"optim.lr": 0.01}``; lists stay one value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        import json

        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def millis(stamp: object) -> int | None:
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _params(config: Mapping[str, Any], notes: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
    params: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for key, value in flatten(config).items():
        if len(params) >= MAX_PARAMS:
            notes.append(f"config keys past the first {MAX_PARAMS} were not exported as params")
            break
        text = _text(value)
        if len(text) > MAX_VALUE:
            notes.append(f"param {key} was cut to {MAX_VALUE} characters")
            text = value = text[: MAX_VALUE - 1] + "…"
        name = clean_key(key)
        params[name] = text
        plain = value is None or isinstance(value, bool | int | float | str)
        typed[name] = value if plain else text
    return params, typed


def _metrics(records: list[dict[str, Any]], notes: list[str]) -> dict[str, list[tuple[int, float]]]:
    """name -> [(step, value)]: the record's ``step`` (else ``epoch``, ``iteration``) when it
    is a whole number, else the line's index; a step that goes back is dropped (trackers keep
    one value per step)."""
    out: dict[str, list[tuple[int, float]]] = {}
    total = 0
    for index, record in enumerate(records):
        x = next(
            (numeric(record[k]) for k in STEP_KEYS if numeric(record.get(k)) is not None), None
        )
        step = int(x) if x is not None and x.is_integer() and abs(x) < 2**62 else index
        for key, value in record.items():
            number = numeric(value)
            if key in STEP_KEYS or number is None or not math.isfinite(number):
                continue
            name = clean_key(key)
            if name not in out and len(out) >= MAX_METRIC_NAMES:
                continue
            if total >= MAX_POINTS:
                notes.append(f"metric points past the first {MAX_POINTS} were not exported")
                return out
            points = out.setdefault(name, [])
            if points and step <= points[-1][0]:
                continue
            points.append((step, number))
            total += 1
    return out


def build_export(
    record: dict[str, Any], *, config: Mapping[str, Any], records: list[dict[str, Any]]
) -> Export:
    """The export of a run: params = the frozen config flattened, metrics with their steps,
    tags = what makes it reproducible (image digest, commit, seed, verdict)."""
    notes: list[str] = []
    params, typed = _params(config, notes)
    for i, override in enumerate(record["config"].get("overrides") or []):
        params.setdefault(f"reprise.override.{i}", str(override)[:MAX_VALUE])
        typed.setdefault(f"reprise.override.{i}", params[f"reprise.override.{i}"])
    image = record["image"]
    code = record["code"]
    reproductions = record.get("reproductions") or []
    tags = {
        "reprise.run_id": record["run_id"],
        "reprise.experiment": record["experiment"],
        "reprise.status": record["status"],
        "reprise.image.id": image["id"],
        "reprise.image.digest": image.get("repo_digest") or image["id"],
        "reprise.commit": code["commit"],
        "reprise.dirty": "true" if code.get("dirty") else "false",
        "reprise.seed": str(record["seed"]),
        "reprise.config_hash": record["config"]["hash"],
        "reprise.verdict": str(reproductions[-1].get("verdict")) if reproductions else "none",
        "reprise.command": shlex.join(record["command"])[:MAX_VALUE],
    }
    if record.get("reproduces"):
        tags["reprise.reproduces"] = str(record["reproduces"])
    if code.get("remote"):
        tags["reprise.remote"] = str(code["remote"])[:MAX_VALUE]
    start = millis(record.get("started_at")) or millis(record.get("created_at")) or 0
    return Export(
        run_id=record["run_id"],
        experiment=record["experiment"],
        status=record["status"],
        start_ms=start,
        end_ms=millis(record.get("finished_at")),
        params=params,
        config=typed,
        tags=tags,
        metrics=_metrics(records, notes),
        notes=sorted(set(notes)),
    )
