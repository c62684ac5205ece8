"""Step fingerprints (``logs/fingerprints.jsonl``, written by the runtime): where two runs'
parameters first part. Pure functions over the two files' text, which the job wrote: every
record is checked, at most MAX_RECORDS are read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PATH = "logs/fingerprints.jsonl"
MAX_RECORDS = 1_000_000
MAX_NAMES = 20


def parse(text: str) -> list[dict[str, Any]]:
    """The records with an integer ``step`` and a string ``params``, in file order; the
    rest is skipped."""
    out = []
    for line in text.splitlines()[:MAX_RECORDS]:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if (
            isinstance(record, dict)
            and isinstance(record.get("step"), int)
            and not isinstance(record.get("step"), bool)
            and isinstance(record.get("params"), str)
        ):
            out.append(record)
    return out


def _per(record: Mapping[str, Any]) -> dict[str, str] | None:
    per = record.get("per_param")
    if isinstance(per, dict) and all(isinstance(v, str) for v in per.values()):
        return {str(k): v for k, v in per.items()}
    return None


def first_divergence(original: str, rerun: str) -> dict[str, Any] | None:
    """The first step both runs fingerprinted whose parameters differ, the last step before
    it where they were equal, and (from the first pair of detailed records at or after it)
    which parameters differ. None when every common step agrees."""
    a = {r["step"]: r for r in parse(original)}
    b = {r["step"]: r for r in parse(rerun)}
    common = sorted(a.keys() & b.keys())
    last_same = None
    for step in common:
        if a[step]["params"] == b[step]["params"]:
            last_same = step
            continue
        report: dict[str, Any] = {"step": step, "last_identical_step": last_same}
        for later in (s for s in common if s >= step):
            pa, pb = _per(a[later]), _per(b[later])
            if pa is not None and pb is not None:
                names = sorted(n for n in pa.keys() | pb.keys() if pa.get(n) != pb.get(n))
                report["params_step"] = later
                report["params"] = names[:MAX_NAMES]
                report["params_count"] = len(names)
                break
        return report
    return None


def describe(report: Mapping[str, Any]) -> str:
    text = f"parameters first differ at step {report['step']}"
    if report.get("last_identical_step") is not None:
        text += f" (identical at step {report['last_identical_step']})"
    else:
        text += " (the first step fingerprinted)"
    if report.get("params"):
        where = (
            ""
            if report.get("params_step") == report["step"]
            else f" at step {report['params_step']}"
        )
        shown = ", ".join(report["params"])
        more = report.get("params_count", 0) - len(report["params"])
        text += f"; differing{where}: {shown}" + (f" and {more} more" if more > 0 else "")
    return text
