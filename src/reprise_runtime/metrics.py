"""A structured metrics logger: one JSON object per line in ``logs/metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from reprise_runtime.paths import run_dir


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):  # NumPy scalars, 0-d tensors
        value = item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class MetricsLogger:
    """Appends records with sorted keys; a record is always written whole, then flushed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or run_dir() / "logs" / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int | None = None, **values: Any) -> None:
        record = {k: _plain(v) for k, v in values.items()}
        if step is not None:
            record["step"] = int(step)
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


_default: MetricsLogger | None = None


def log_metrics(step: int | None = None, **values: Any) -> None:
    """Log one record to the run's ``logs/metrics.jsonl``."""
    global _default
    if _default is None:
        _default = MetricsLogger()
    _default.log(step, **values)
