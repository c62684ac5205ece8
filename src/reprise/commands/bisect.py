"""`reprise reproduce RUN --bisect`: narrow a divergence the step fingerprints found between
two fingerprinted steps (L identical, S differing) to the step and parameters where it starts.

Two partial reruns on the reproduction's machine, each fingerprinting every optimizer step
and ending after step S, from the original run's newest periodic checkpoint at or before
step L (``checkpoints/step_N.pt``, given to the rerun as its ``last.pt`` with
REPRISE_RESUME=1; from the start when there is none, or when the script does not resume).
If the two differ from each other, the run is not deterministic here and the first step
they differ at is named with its parameters; if they agree, the difference is between the
original's machine and this one. Both passes are ordinary runs, recorded with ``bisect``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import IO, Any

from reprise.commands.build import RunImage
from reprise.commands.inputs import RunInputs
from reprise.commands.run import execute
from reprise.commands.verdict import JSONL_LIMIT, Verdict
from reprise.core import fingerprints, keys
from reprise.core.progress import Say
from reprise.edges.hashing import hash_fd
from reprise.edges.runfiles import PlantedFileError, open_dir, open_regular, read_text_or_none

PASSES = 2
MAX_STOP = 1_000_000_000  # as the record's schema bounds fingerprint-every
_PERIODIC = re.compile(r"step_([0-9]{1,12})\.pt")
_CHECKPOINTS = keys.RUN_LAST_CHECKPOINT.rpartition("/")[0]


def checkpoint_at_or_before(run_dir: Path, step: int | None) -> tuple[str, str, int] | None:
    """The original's newest periodic checkpoint at or before ``step`` (its path in the run,
    blake3 and step), a regular file opened without following a link; None when none is.
    Its number is the script's step, taken to count optimizer steps (as the runtime's
    ``Checkpoints.step`` is used in a plain loop): a later one only shortens the narrowing."""
    if not step:
        return None
    try:
        with open_dir(run_dir, _CHECKPOINTS) as fd:
            names = os.listdir(fd)  # noqa: PTH208 (a descriptor: no link followed)
    except OSError:
        return None
    found = sorted(
        (int(m.group(1)), name)
        for name in names
        if (m := _PERIODIC.fullmatch(name)) and int(m.group(1)) <= step
    )
    for number, name in reversed(found):
        rel = f"{_CHECKPOINTS}/{name}"
        try:
            fd = open_regular(run_dir, rel)
        except (PlantedFileError, OSError):
            continue
        try:
            return rel, "blake3:" + hash_fd(fd, os.fstat(fd).st_size), number
        finally:
            os.close(fd)
    return None


def bisect(
    backend: Any,
    run_dir: Path,
    record: dict[str, Any],
    inputs: RunInputs,
    image: RunImage,
    report: dict[str, Any],
    *,
    reproduction: str | None,
    say: Say,
    console: IO[bytes] | None = None,
) -> dict[str, Any]:
    """Run the two passes for the divergence ``report`` (first_divergence's) and say what
    they found; the passes' run ids are in ``runs``."""
    stop = int(report["step"])
    start = checkpoint_at_or_before(run_dir, report.get("last_identical_step"))
    resumes = None
    if start is not None:
        resumes = {"run_id": record["run_id"], "checkpoint": start[0], "checkpoint_hash": start[1]}
    texts: list[str] = []
    runs: list[str] = []
    for n in range(1, PASSES + 1):
        where = f"{start[0]}" if start else "the start"
        say(f"bisect pass {n} of {PASSES}: from {where}, every step fingerprinted, to step {stop}")
        pass_inputs = dataclasses.replace(
            inputs,
            reproduces=None,
            seed_source="bisect",
            fingerprint_every=1,
            resumes=resumes,
            resume_dir=run_dir if start else None,
            bisect={
                "of": record["run_id"],
                "reproduction": reproduction,
                "stop_after_step": stop,
                "pass": n,
            },
        )
        pass_dir = execute(backend, pass_inputs, image, say=say, console=console)
        runs.append(pass_dir.name)
        texts.append(read_text_or_none(pass_dir, keys.RUN_FINGERPRINTS, JSONL_LIMIT) or "")
    original = read_text_or_none(run_dir, keys.RUN_FINGERPRINTS, JSONL_LIMIT) or ""
    finding = fingerprints.bisect_finding(
        original,
        texts[0],
        texts[1],
        stop=stop,
        every=record.get("fingerprint_every"),
        start=start[2] if start else None,
    )
    finding["checkpoint"] = start[0] if start else None
    finding["runs"] = runs
    return finding


def narrow(
    backend: Any,
    verdict: Verdict,
    run_dir: Path,
    record: dict[str, Any],
    inputs: RunInputs,
    image: RunImage,
    *,
    say: Say,
    console: IO[bytes] | None = None,
) -> None:
    """--bisect after a verdict: when the fingerprints named a diverging step, run the passes
    and put what they found beside that line."""
    report = verdict.reports.get(fingerprints.PATH)
    last = report.get("last_identical_step") if report else None
    if report is not None and not (
        0 < report["step"] <= MAX_STOP and (last is None or 0 < last < report["step"])
    ):  # the steps come from the job's own file
        verdict.details.append(f"bisect: no step to stop at (step {report['step']!r})")
        return
    if verdict.verdict != "diverged" or report is None:
        if verdict.verdict == "diverged":
            verdict.details.append(
                "bisect: nothing to narrow (no step fingerprints differ: the run recorded "
                "none, or they agree)"
            )
        return
    finding = bisect(
        backend, run_dir, record, inputs, image, report,
        reproduction=verdict.rerun_id, say=say, console=console,
    )  # fmt: skip
    verdict.bisect = finding
    line = fingerprints.describe(report)
    at = verdict.details.index(line) + 1 if line in verdict.details else 0
    verdict.details.insert(at, fingerprints.describe_bisect(finding))
