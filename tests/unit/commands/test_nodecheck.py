"""reproduce's check of every node's target on Slurm, with the cluster faked: the nodes asked
before the rerun (--strict only) and the rerun's own records after it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from reprise.commands import nodecheck
from reprise.core.errors import TargetMismatchError
from reprise.core.slurm import SlurmOptions
from reprise.execution.backend import Backend
from reprise.execution.slurm import SlurmBackend

LAYOUT = SlurmOptions(nodes=2)


def _record(cpu: str) -> dict[str, Any]:
    nodes = [{"node": n, "hostname": f"s{n + 1}", "cpu": cpu, "cpu_count": 2} for n in (0, 1)]
    return {
        "executor": {"kind": "slurm", "host": "slurm://c", "slurm": LAYOUT.to_record()},
        "runtime": {"nodes": nodes},
        "gpus": None,
    }


def _run(tmp_path: Path, name: str, threads: tuple[int, int] = (1, 1)) -> Path:
    run = tmp_path / name
    (run / "runtime").mkdir(parents=True)
    for rank, n in enumerate(threads):
        (run / "runtime" / f"rank-{rank}.json").write_text(
            json.dumps({"torch": {"num_threads": n}})
        )
    return run


def _backend() -> SlurmBackend:
    return SlurmBackend(lambda: cast(Any, None), LAYOUT)


def test_the_reruns_ranks_are_compared_with_the_originals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, rerun = _run(tmp_path, "a"), _run(tmp_path, "b", threads=(1, 3))
    monkeypatch.setattr(nodecheck, "read_record", lambda path: _record("Intel Xeon"))
    said: list[str] = []
    diffs = nodecheck.after_rerun(
        _backend(), original, _record("AMD EPYC"), rerun, False, said.append
    )
    fields = [d.field for d in diffs]
    assert fields == [
        "rank 0 (node 0) cpu model",
        "rank 1 (node 1) cpu model",
        "rank 1 (node 1) torch threads",
    ]
    assert (
        said[0]
        == "target: rank 0 (node 0) cpu model: 'AMD EPYC' -> 'Intel Xeon' (voids the bitwise guarantee)"
    )
    with pytest.raises(TargetMismatchError) as refused:
        nodecheck.after_rerun(_backend(), original, _record("AMD EPYC"), rerun, True, said.append)
    assert refused.value.exit_code == 3 and "rank 1 (node 1) torch threads" in refused.value.message
    monkeypatch.setattr(nodecheck, "read_record", lambda path: _record("AMD EPYC"))
    same = _run(tmp_path, "c")
    assert nodecheck.after_rerun(_backend(), original, _record("AMD EPYC"), same, True, print) == []


def test_strict_asks_the_nodes_before_submitting_and_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprise.edges import slurmctl

    asked: list[list[str]] = []

    def on_each_node(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        asked.append(command)
        out = "node=1\thostname=s2\tcpu=Intel Xeon\t\nnode=0\thostname=s1\tcpu=AMD EPYC\t\n"
        return subprocess.CompletedProcess(command, 0, out, "")

    monkeypatch.setattr(slurmctl, "on_each_node", on_each_node)
    original = _run(tmp_path, "a")
    assert nodecheck.before_rerun(_backend(), original, _record("AMD EPYC"), False, print) == []
    assert asked == []  # not asked without --strict
    with pytest.raises(TargetMismatchError, match=r"rank 1 \(node 1\) cpu model"):
        nodecheck.before_rerun(_backend(), original, _record("AMD EPYC"), True, print)
    monkeypatch.setattr(
        slurmctl,
        "on_each_node",
        lambda c, **kw: subprocess.CompletedProcess(c, 1, "", "srun: error: Unable to allocate"),
    )
    from reprise.core.errors import EngineError

    with pytest.raises(EngineError, match="Unable to allocate"):
        nodecheck.before_rerun(_backend(), original, _record("AMD EPYC"), True, print)


def test_runs_on_one_machine_have_no_ranks_to_check(tmp_path: Path) -> None:
    class One:
        def rank_targets(self, run_dir: Path, record: Any) -> None:
            return None

    backend = cast(Backend, One())
    assert nodecheck.after_rerun(backend, tmp_path, {}, tmp_path, True, print) == []
    assert nodecheck.before_rerun(backend, tmp_path, {}, True, print) == []
    local = {"executor": {"kind": "local"}}
    assert _backend().rank_targets(tmp_path, local) is None
