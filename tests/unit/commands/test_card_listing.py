"""Metrics summaries, ls and show: no engine needed (the card is in test_card.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from reprise.cli import cli
from reprise.core.metrics import parse_records, summarize
from reprise.edges.runindex import INDEX_NAME, list_runs
from reprise.edges.runstore import write_record


def _record(run_id: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": 1,
        "run_id": run_id,
        "experiment": "spiral",
        "project": "spiral",
        "status": "succeeded",
        "exit_code": 0,
        "reason": None,
        "created_at": "2026-11-23T14:00:00.000Z",
        "started_at": "2026-11-23T14:00:01.000Z",
        "finished_at": "2026-11-23T14:05:31.000Z",
        "duration_s": 330.0,
        "command": ["python", "train.py", "--fast"],
        "seed": 1234,
        "seed_source": "config",
        "threads": 1,
        "code": {
            "commit": "a" * 40,
            "branch": "main",
            "remote": "git@example.invalid:lab/spiral.git",
            "dirty": False,
            "patch_hash": None,
            "subdir": "",
        },
        "config": {
            "hash": "sha256:" + "c" * 64,
            "overrides": ["optim.lr=0.01"],
            "source": "config.yaml",
        },
        "data": {
            "train": {
                "path": "/data/train",
                "hash": "sha256:" + "d" * 64,
                "files": 3,
                "bytes": 4096,
            }
        },
        "image": {
            "tag": "reprise/spiral:0123456789abcdef0123",
            "id": "sha256:" + "1" * 64,
            "repo_digest": "127.0.0.1:5000/team/reprise/spiral@sha256:" + "2" * 64,
            "registry": "127.0.0.1:5000/team",
            "base_image": "nvidia/cuda:12.4.1@sha256:" + "3" * 64,
            "base_digest": "sha256:" + "3" * 64,
            "lock_hash": "sha256:" + "4" * 64,
        },
        "runtime": {
            "python": "3.11.2",
            "torch": {"version": "2.13.0", "cuda": "12.4", "cudnn": 90100},
        },
        "host": {
            "cpu": "AMD EPYC",
            "arch": "x86_64",
            "docker_version": "28.2.2",
            "gpu": {
                "cuda": "12.4",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}],
            },
        },
        "manifest": {"files": 4, "algorithm": "blake3", "hash": "sha256:" + "5" * 64},
        "reproductions": [
            {
                "run_id": "20261130-090000-00000001",
                "verdict": "identical",
                "at": "2026-11-30T09:10:00.000Z",
                "gpu": "NVIDIA H100 80GB HBM3",
                "driver": "550.54.15",
                "cpu": "AMD EPYC",
            }
        ],
        "reproduces": None,
        "environment": {"image": {}, "run": {}, "user": {}, "secrets": []},
    }
    record.update(changes)
    return record


METRICS = "".join(
    json.dumps({"step": s, "train_loss": 1.0 / s, "val_acc": min(1.0, 0.5 + s / 10)}) + "\n"
    for s in range(1, 8)
)


def _run_dir(root: Path, run_id: str, **changes: Any) -> Path:
    run = root / "spiral" / run_id
    (run / "logs").mkdir(parents=True)
    write_record(run, _record(run_id, **changes))
    (run / "config.yaml").write_text("optim:\n  lr: 0.01\nseed: 1234\n")
    (run / "logs" / "metrics.jsonl").write_text(METRICS)
    return run


def test_metrics_summary_picks_min_for_losses_and_max_otherwise() -> None:
    summaries = {m.name: m for m in summarize(parse_records(METRICS + "not json\n"))}
    assert summaries["train_loss"].goal == "min" and summaries["train_loss"].best == 1.0 / 7
    assert summaries["val_acc"].goal == "max" and summaries["val_acc"].best == 1.0
    assert summaries["val_acc"].best_step == 5


def test_ls_newest_first_with_filters_and_json(tmp_path: Path) -> None:
    _run_dir(tmp_path, "20261123-140000-00000000")
    _run_dir(tmp_path, "20261124-140000-00000000", status="failed", exit_code=2)
    other = tmp_path / "other" / "20261125-000000-00000000"
    other.mkdir(parents=True)
    write_record(other, _record(other.name, experiment="other"))
    assert [r["run_id"] for r in list_runs(tmp_path)] == [
        "20261125-000000-00000000",
        "20261124-140000-00000000",
        "20261123-140000-00000000",
    ]
    assert [r["run_id"] for r in list_runs(tmp_path, status="failed")] == [
        "20261124-140000-00000000"
    ]
    assert [r["run_id"] for r in list_runs(tmp_path, experiment="other")] == [
        "20261125-000000-00000000"
    ]
    assert (tmp_path / INDEX_NAME).is_file()
    result = CliRunner().invoke(cli, ["ls", "--runs-dir", str(tmp_path), "--json", "-e", "spiral"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [r["run_id"] for r in data] == ["20261124-140000-00000000", "20261123-140000-00000000"]
    assert data[1]["last_verdict"] == "identical"
    human = CliRunner().invoke(cli, ["ls", "--runs-dir", str(tmp_path)])
    assert human.stdout.splitlines()[0].startswith("RUN")
    assert "20261124-140000-00000000" in human.stdout.splitlines()[2]


def test_ls_index_follows_changed_records(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "20261123-140000-00000000", status="running")
    assert list_runs(tmp_path)[0]["status"] == "running"
    write_record(run, _record(run.name, status="failed", note="x" * 10))
    assert list_runs(tmp_path)[0]["status"] == "failed"
    (tmp_path / INDEX_NAME).write_text("{garbage")
    assert list_runs(tmp_path)[0]["status"] == "failed"


def test_show_human_and_json(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "20261123-140000-00000000")
    result = CliRunner().invoke(cli, ["show", "20261123", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "status     succeeded (exit code 0)" in out
    assert "metric     train_loss: final 0.142857, best 0.142857 (min)" in out
    assert "verdict    reproduced bit-for-bit on NVIDIA H100 80GB HBM3" in out
    assert "data       train: sha256:dddd" in out
    as_json = CliRunner().invoke(cli, ["show", run.name, "--runs-dir", str(tmp_path), "--json"])
    assert json.loads(as_json.stdout)["run_id"] == run.name
    missing = CliRunner().invoke(cli, ["show", "2030", "--runs-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no run matches '2030'" in missing.stderr
