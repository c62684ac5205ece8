"""A sweep through the execution seam with the in-memory backend: every run checked before
any starts, recorded with the sweep's id, place and size, one after another or two at a
time, found again by `ls --sweep` and compared; Ctrl-C stops what has started."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reprise.commands.compare import compare
from reprise.commands.inputs import RunInputs
from reprise.commands.show import list_runs
from reprise.commands.sweep import _Sweep, plan
from reprise.core.errors import ConfigError, UsageError
from reprise.edges.project import load_project
from reprise.edges.runstore import read_record
from reprise.execution.backend import JobExit

from ...fakes import FakeBackend
from ...projects import init_repo, tiny_project
from .test_lifecycle import IMAGE

ARGS: dict[str, Any] = {
    "seed": None,
    "command": None,
    "allow_dirty": False,
    "gpus": None,
    "threads": 1,
}


def _planned(tmp_path: Path, overrides: list[str], sweep_id: str) -> list[RunInputs]:
    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    return plan(load_project(root), overrides, sweep_id=sweep_id, **ARGS)


def test_a_bad_value_anywhere_in_the_sweep_fails_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        _planned(tmp_path, ["lr=0.1,0.2", "model.nope=1,2"], "sweep-20261130-120000-0000aaaa")


@pytest.mark.parametrize("jobs", [1, 2])
def test_runs_are_recorded_under_the_sweep_and_found_again(tmp_path: Path, jobs: int) -> None:
    sweep_id = "sweep-20261130-120000-0000aaaa"
    planned = _planned(tmp_path, ["lr=0.1,0.2", "seed=1,2"], sweep_id)
    said: list[str] = []
    runner = _Sweep(FakeBackend(), IMAGE, planned, ["lr", "seed"], said.append)
    run_dirs = runner.one_by_one() if jobs == 1 else runner.at_once(jobs)
    records = [read_record(d) for d in run_dirs]
    assert [r["sweep"] for r in records] == [
        {"id": sweep_id, "index": i, "size": 4} for i in range(4)
    ]
    assert [(r["config"]["overrides"], r["seed"]) for r in records] == [
        (["lr=0.1", "seed=1"], 1),
        (["lr=0.1", "seed=2"], 2),
        (["lr=0.2", "seed=1"], 1),
        (["lr=0.2", "seed=2"], 2),
    ]
    assert all(r["status"] == "succeeded" for r in records)
    assert "[3/4] lr=0.2 seed=1: succeeded" in " ".join(said)
    runs_dir = run_dirs[0].parents[1]
    for ref in (sweep_id, "0000aaaa", "latest"):
        found = list_runs(
            runs_dir, experiment=None, status=None, limit=None, say=said.append, sweep=ref
        )
        assert sorted(s["run_id"] for s in found) == sorted(r["run_id"] for r in records)
    with pytest.raises(UsageError, match="no sweep 'ffffffff'"):
        list_runs(
            runs_dir, experiment=None, status=None, limit=None, say=said.append, sweep="ffffffff"
        )
    table = compare(run_dirs)
    assert table["config_keys"] == ["lr", "seed"] and table["seed_differs"]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_the_started_runs_and_starts_no_more(tmp_path: Path, presses: int) -> None:
    """Once, or twice (the second while the started runs are being stopped: held)."""
    planned = _planned(tmp_path, ["seed=1,2,3,4"], "sweep-20261130-120000-0000bbbb")

    fired: list[bool] = []

    class Slow(FakeBackend):
        def wait(self, job: str) -> JobExit:  # each job runs until it is stopped
            deadline = time.monotonic() + 30
            while job not in self.stopped and time.monotonic() < deadline:
                time.sleep(0.05)
            return super().wait(job)

        def start(self, job: str) -> None:
            super().start(job)
            if len(self.jobs_made) == 2 and not fired:  # both workers busy: Ctrl-C, once
                fired.append(True)
                threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

        def stop(self, job: str, *, timeout: int) -> None:
            super().stop(job, timeout=timeout)
            if presses == 2 and len(self.stopped) == 1:  # pressed again while stopping
                os.kill(os.getpid(), signal.SIGINT)

    backend = Slow()
    said: list[str] = []
    runner = _Sweep(backend, IMAGE, planned, ["seed"], said.append)
    with pytest.raises(KeyboardInterrupt):
        runner.at_once(2)
    assert not [s for s in said if "ended in error" in s], said
    records = [read_record(d) for d in runner.started]
    assert len(records) == 2 and len(backend.jobs_made) == 2
    assert [r["status"] for r in records] == ["interrupted", "interrupted"]
    assert sorted(backend.stopped) == sorted(r["container"]["id"] for r in records)
