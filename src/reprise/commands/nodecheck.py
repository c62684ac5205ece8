"""`reprise reproduce` of a run spread over nodes (Slurm): every rank's target checked against
the original's, as the local target check does for one machine (``commands.reproduce``).

Before the rerun, with ``--strict`` only, the nodes a job would get are asked what they are (a
short job step: CPU and GPU models), and a difference that voids the bitwise guarantee refuses
the rerun before it is submitted. After it, the rerun's own records (each node's description,
each rank's runtime record: thread count, GPU SM count) are compared with the original's, rank
by rank; those differences go into the verdict, and ``--strict`` refuses a verdict they void.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.core.divergence import TargetDifference
from reprise.core.errors import TargetMismatchError
from reprise.core.nodetarget import rank_differences
from reprise.core.progress import Say
from reprise.edges.runstore import read_record
from reprise.execution.backend import Backend


def uses_gpu(record: dict[str, Any]) -> bool:
    slurm = (record.get("executor") or {}).get("slurm") or {}
    return bool(record.get("gpus")) or bool(slurm.get("gpus_per_node"))


def _report(diffs: list[TargetDifference], strict: bool, say: Say) -> list[TargetDifference]:
    for d in diffs:
        say(f"target: {d.describe()}")
    if strict and any(d.voids for d in diffs):
        raise TargetMismatchError([d.describe() for d in diffs if d.voids])
    return diffs


def before_rerun(
    backend: Backend, run_dir: Path, record: dict[str, Any], strict: bool, say: Say
) -> list[TargetDifference]:
    """--strict: the nodes asked now against the original's ranks (nothing without it)."""
    if not strict:
        return []
    original = backend.rank_targets(run_dir, record)
    if original is None:
        return []
    current = backend.node_targets()
    if current is None:
        return []
    return _report(rank_differences(original, current, uses_gpu=uses_gpu(record)), strict, say)


def after_rerun(
    backend: Backend, run_dir: Path, record: dict[str, Any], rerun_dir: Path, strict: bool, say: Say
) -> list[TargetDifference]:
    """The rerun's ranks against the original's."""
    original = backend.rank_targets(run_dir, record)
    if original is None:
        return []
    current = backend.rank_targets(rerun_dir, read_record(rerun_dir)) or []
    return _report(rank_differences(original, current, uses_gpu=uses_gpu(record)), strict, say)
