"""Step fingerprints (``logs/fingerprints.jsonl``, written by the runtime): where two runs'
parameters first part. Pure functions over the two files' text, which the job wrote: every
record is checked, at most MAX_RECORDS are read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reprise.core import keys

PATH = keys.RUN_FINGERPRINTS
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


def steps(text: str) -> list[int]:
    """The steps a fingerprints file records, in order."""
    return sorted({r["step"] for r in parse(text)})


def bisect_finding(
    original: str,
    first: str,
    second: str,
    *,
    stop: int,
    every: int | None,
    start: int | None = None,
) -> dict[str, Any]:
    """What two partial reruns (``first`` and ``second``, fingerprinted every step up to
    ``stop``) say about a divergence that the original and its reproduction show at ``stop``:
    ``nondeterministic`` (the reruns differ from each other: the step and parameters where),
    ``between-machines`` (they agree step by step but not with the original at ``stop``), or
    ``not-recurring`` (they agree with the original there); ``incomplete`` when a rerun did
    not fingerprint ``stop``, or did not continue from ``start`` (the checkpoint's step) when
    it was given one: its steps would not be the original's."""
    ran = steps(first)
    finding: dict[str, Any] = {
        "from_step": (ran[0] - 1) if ran else None,
        "stop_after_step": stop,
        "steps_compared": len(set(ran) & set(steps(second))),
    }
    if stop not in ran or stop not in steps(second):
        return {**finding, "finding": "incomplete"}
    if start is not None and (ran[0] != start + 1 or steps(second)[0] != start + 1):
        return {**finding, "finding": "incomplete", "expected_from_step": start}
    between = first_divergence(first, second)
    if between is not None:
        return {**finding, "finding": "nondeterministic", **between}
    at_stop = {r["step"]: r["params"] for r in parse(original)}.get(stop)
    mine = {r["step"]: r["params"] for r in parse(first)}[stop]
    if at_stop == mine:
        return {**finding, "finding": "not-recurring"}
    return {**finding, "finding": "between-machines", "every": every}


def describe_bisect(finding: Mapping[str, Any]) -> str:
    start = finding.get("from_step")
    span = (
        f"from step {start} to step {finding['stop_after_step']}"
        if start
        else f"from the start to step {finding['stop_after_step']}"
    )
    kind = finding["finding"]
    if kind == "nondeterministic":
        return f"bisect: two reruns {span} on this machine: {describe(finding)} (the run is not deterministic here)"
    if kind == "not-recurring":
        return (
            f"bisect: two reruns {span} agree with each other and with the original at step "
            f"{finding['stop_after_step']}: the divergence did not recur"
        )
    if kind == "between-machines":
        every = finding.get("every")
        return (
            f"bisect: two reruns {span} agree with each other at every step, but not with the "
            f"original at step {finding['stop_after_step']}: the difference is between the "
            "machines, not within this one"
            + (
                f" (the original fingerprinted every {every} steps; rerun it with "
                "fingerprint-every = 1 where it ran to name the step)"
                if every and every > 1
                else ""
            )
        )
    if finding.get("expected_from_step") is not None:
        return (
            f"bisect: the reruns did not continue from step {finding['expected_from_step']} "
            "of the checkpoint they were given (the script does not resume with reprise's "
            "Checkpoints?): nothing narrowed"
        )
    return (
        f"bisect: the reruns {span} did not reach step {finding['stop_after_step']} "
        "(nothing narrowed)"
    )
