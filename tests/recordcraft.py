"""Valid run records to start from, and run directories holding them, for tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from reprise.edges.runstore import write_record

BASE: dict[str, Any] = {
    "schema": 1,
    "reprise_version": "0.1.0",
    "run_id": "20261123-140000-000000-00000000",
    "experiment": "exp",
    "project": "exp",
    "status": "succeeded",
    "exit_code": 0,
    "reason": None,
    "created_at": "2026-11-23T14:00:00.000Z",
    "started_at": "2026-11-23T14:00:01.000Z",
    "finished_at": "2026-11-23T14:00:02.000Z",
    "duration_s": 1.0,
    "command": ["python", "train.py"],
    "reproduces": None,
    "image": {
        "tag": "reprise/exp:0123456789abcdef0123",
        "id": "sha256:" + "1" * 64,
        "repo_digest": None,
        "base_ref": "127.0.0.1:5000/reprise/base@sha256:" + "3" * 64,
    },
    "code": {
        "remote": None,
        "commit": "a" * 40,
        "branch": "main",
        "subdir": "",
        "dirty": False,
        "patch": None,
        "patch_hash": None,
    },
    "config": {"source": "config.yaml", "overrides": [], "hash": "sha256:" + "c" * 64},
    "seed": 7,
    "seed_source": "config",
    "data": {},
    "threads": 1,
    "gpus": None,
    "environment": {"image": {}, "run": {}, "user": {}, "secrets": []},
    "resources": {"memory": None, "shm_size": None, "cpus": None, "pids_limit": 8192},
    "container": None,
    "host": None,
    "runtime": None,
    "manifest": None,
}


def valid_record(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(BASE)
    record.update(changes)
    return record


def write_run(runs_dir: Path, record: dict[str, Any]) -> Path:
    run: Path = runs_dir / str(record["experiment"]) / str(record["run_id"])
    run.mkdir(parents=True, exist_ok=True)
    write_record(run, record)
    return run
