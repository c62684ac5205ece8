"""A finished run with metrics, a manifest and a reproduction, for the card and export tests:
built on disk without an engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reprise.core.manifest import Entry, Manifest
from reprise.edges.runstore import write_record

from .recordcraft import valid_record

RUN_ID = "20261123-140000-00000000"
RERUN_ID = "20261130-090000-00000001"

METRICS = "".join(
    json.dumps(
        {"step": s, "train_loss": 2.0 / s, "val_loss": 2.2 / s + 0.05, "val_acc": min(1.0, s / 8)}
    )
    + "\n"
    for s in range(1, 9)
)
CONFIG = "optim:\n  lr: 0.01\n  betas: [0.9, 0.999]\nseed: 1234\nmodel:\n  name: mlp\n"


def card_record(run_id: str = RUN_ID, **changes: Any) -> dict[str, Any]:
    record = valid_record(
        run_id=run_id,
        experiment="spiral",
        project="spiral",
        finished_at="2026-11-23T14:05:31.000Z",
        duration_s=330.0,
        command=["python", "train.py", "--fast"],
        seed=1234,
        code={
            "commit": "a" * 40,
            "branch": "main",
            "remote": "git@example.invalid:lab/spiral.git",
            "dirty": False,
            "patch": None,
            "patch_hash": None,
            "subdir": "",
        },
        config={
            "hash": "sha256:" + "c" * 64,
            "overrides": ["optim.lr=0.01"],
            "source": "config.yaml",
        },
        data={
            "train": {
                "path": "/data/train",
                "hash": "sha256:" + "d" * 64,
                "files": 3,
                "bytes": 4096,
            }
        },
        image={
            "tag": "reprise/spiral:0123456789abcdef0123",
            "id": "sha256:" + "1" * 64,
            "repo_digest": "127.0.0.1:5000/team/reprise/spiral@sha256:" + "2" * 64,
            "registry": "127.0.0.1:5000/team",
            "base_image": "nvidia/cuda:12.4.1@sha256:" + "3" * 64,
            "base_digest": "sha256:" + "3" * 64,
            "lock_hash": "sha256:" + "4" * 64,
        },
        runtime={
            "python": "3.11.2",
            "torch": {"version": "2.13.0", "cuda": "12.4", "cudnn": 90100},
        },
        host={
            "cpu": "AMD EPYC",
            "arch": "x86_64",
            "docker_version": "28.2.2",
            "gpu": {
                "cuda": "12.4",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}],
            },
        },
        manifest={"files": 3, "algorithm": "blake3", "hash": "sha256:" + "5" * 64},
        reproductions=[
            {
                "run_id": RERUN_ID,
                "verdict": "identical",
                "at": "2026-11-30T09:10:00.000Z",
                "gpu": "NVIDIA H100 80GB HBM3",
                "driver": "550.54.15",
                "cpu": "AMD EPYC",
            }
        ],
    )
    record.update(changes)
    return record


def card_run(root: Path, run_id: str = RUN_ID, *, metrics: str = METRICS, **changes: Any) -> Path:
    """runs/spiral/<run_id> with run.json, config.yaml, logs/metrics.jsonl and manifest.json."""
    run = root / "spiral" / run_id
    (run / "logs").mkdir(parents=True)
    write_record(run, card_record(run_id, **changes))
    (run / "config.yaml").write_text(CONFIG)
    if metrics:
        (run / "logs" / "metrics.jsonl").write_text(metrics)
    entries = (
        Entry("checkpoints/last.pt", 10, "a" * 64),
        Entry("logs/metrics.jsonl", len(metrics), "b" * 64),
        Entry("outputs/model.safetensors", 10, "c" * 64),
    )
    (run / "manifest.json").write_text(Manifest("blake3", entries).to_json())
    return run
