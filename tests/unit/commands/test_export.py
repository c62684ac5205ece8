"""`reprise export`: a run built on disk (no engine) into a real MLflow store (read back with
MlflowClient), TensorBoard event files (read back with TensorBoard's EventAccumulator) and W&B
offline files (written by wandb itself, parsed back record by record)."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reprise.cli import cli
from reprise.commands.export import export_run, plan
from reprise.core.errors import ExportError, UsageError
from reprise.core.tracking import build_export, clean_key, flatten

from ...cardcraft import RUN_ID, card_record, card_run


def _export(tmp_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(
        cli, ["export", RUN_ID, *args, "--runs-dir", str(tmp_path / "runs"), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_plan_is_the_record_flattened() -> None:
    assert flatten({"optim": {"lr": 0.01, "betas": [0.9, 0.99]}, "seed": 1, "empty": {}}) == {
        "optim.lr": 0.01,
        "optim.betas": [0.9, 0.99],
        "seed": 1,
        "empty": {},
    }
    assert clean_key("val acc@5%") == "val acc_5_" and len(clean_key("k" * 999)) == 250
    records: list[dict[str, Any]] = [
        {"step": 1, "loss": 1.0, "note": "text", "flag": True},
        {"step": 2, "loss": math.nan, "acc": 0.5},
        {"step": 2, "loss": 0.7},  # the same step again: trackers keep one value per step
        {"epoch": 2.5, "loss": 0.4},  # not a whole step: the line's index
        {"loss": 0.3},
    ]
    export = build_export(
        card_record(), config={"optim": {"lr": 0.01, "betas": [0.9]}}, records=records
    )
    assert export.metrics == {"loss": [(1, 1.0), (2, 0.7), (3, 0.4), (4, 0.3)], "acc": [(2, 0.5)]}
    assert export.params == {
        "optim.lr": "0.01",
        "optim.betas": "[0.9]",
        "reprise.override.0": "optim.lr=0.01",
    }
    assert export.config["optim.lr"] == 0.01
    assert export.tags["reprise.verdict"] == "identical" and export.tags["reprise.seed"] == "1234"
    assert export.tags["reprise.image.digest"].startswith("127.0.0.1:5000/team/reprise/spiral@")
    assert export.steps()[:2] == [(1, {"loss": 1.0}), (2, {"loss": 0.7, "acc": 0.5})]
    assert export.start_ms == 1795442401000  # 2026-11-23T14:00:01Z
    assert export.tracker_status == "FINISHED"


def test_metric_names_become_normalised_paths_and_the_point_cap_leaves_no_empty_series(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reprise.core import tracking

    for raw, clean in [("val/", "val"), ("a//b", "a/b"), ("./x", "x"), ("../../etc", "etc"),
                       ("train/loss", "train/loss"), ("..", "_"), ("/abs", "abs")]:  # fmt: skip
        assert clean_key(raw) == clean, raw
    monkeypatch.setattr(tracking, "MAX_POINTS", 2)
    records: list[dict[str, Any]] = [{"step": 1, "a": 1.0, "b": 2.0}, {"step": 2, "c": 3.0}]
    export = build_export(card_record(), config={}, records=records)
    assert export.metrics == {"a": [(1, 1.0)], "b": [(1, 2.0)]}  # no empty "c"
    assert all(points for points in export.metrics.values())


def test_export_reads_the_run_as_hostile_input(tmp_path: Path) -> None:
    run = card_run(tmp_path / "runs")
    (run / "logs" / "metrics.jsonl").unlink()
    (tmp_path / "elsewhere.jsonl").write_text('{"step": 1, "stolen": 1}\n')
    (run / "logs" / "metrics.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    (run / "config.yaml").write_text("a: &x [1]\nb: *x\n")  # aliases refused: no params
    export = plan(run)
    assert export.metrics == {} and export.params == {"reprise.override.0": "optim.lr=0.01"}


def test_mlflow_export_reads_back_from_a_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow keeps a local store's artifacts beside it
    card_run(tmp_path / "runs")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = _export(tmp_path, "--to", "mlflow", "--tracking-uri", uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(out["mlflow_run_id"])
    assert run.info.run_name == RUN_ID and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.01" and run.data.params["model.name"] == "mlp"
    assert run.data.tags["reprise.commit"] == "a" * 40
    assert run.data.tags["reprise.verdict"] == "identical"
    note = run.data.tags["mlflow.note.content"]  # the card, as the run's description
    assert note.startswith("# Model card: spiral / spiral / run ") and "- reprise\n" not in note
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(s, 2.2 / s + 0.05) for s in range(1, 9)]
    assert len(history) == 8
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reprise")}
    assert artifacts == {
        "reprise/model_card.md",
        "reprise/manifest.json",
        "reprise/config.yaml",
        "reprise/training_curves.png",
    }
    again = CliRunner().invoke(
        cli,
        [
            "export",
            RUN_ID,
            "--to",
            "mlflow",
            "--tracking-uri",
            uri,
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert again.exit_code == 2 and "already in MLflow" in again.stderr


def test_mlflow_export_of_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    run = card_run(tmp_path / "runs", status="failed", exit_code=1, reason="boom", reproductions=[])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = export_run(run, "mlflow", tracking_uri=uri)
    got = MlflowClient(tracking_uri=uri).get_run(out["mlflow_run_id"])
    assert got.info.status == "FAILED" and got.data.tags["reprise.verdict"] == "none"


def test_tensorboard_export_reads_back_with_tensorboards_reader(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    card_run(tmp_path / "runs")
    out = _export(tmp_path, str(tmp_path / "tb"), "--to", "tensorboard")
    assert out["logdir"] == str(tmp_path / "tb" / "spiral" / RUN_ID)
    reader = EventAccumulator(out["logdir"])
    reader.Reload()
    tags = reader.Tags()
    assert sorted(tags["scalars"]) == ["train_loss", "val_acc", "val_loss"]
    scalars = reader.Scalars("train_loss")
    assert [(e.step, e.value) for e in scalars] == [
        (s, pytest.approx(2.0 / s)) for s in range(1, 9)
    ]
    assert "reprise/model_card" in tags["tensors"]
    card = reader.Tensors("reprise/model_card")[0].tensor_proto.string_val[0].decode()
    assert "# Model card: spiral / spiral / run" in card
    again = CliRunner().invoke(
        cli,
        [
            "export",
            RUN_ID,
            str(tmp_path / "tb"),
            "--to",
            "tensorboard",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert again.exit_code == 2 and "already holds event files" in again.stderr


def _wandb_records(path: Path) -> list[Any]:
    """The records of a .wandb file: LevelDB's log format (32 KiB blocks of checksummed,
    possibly split records) behind W&B's 7-byte header, each record a protobuf Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, parts, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = pb.Record()  # type: ignore[attr-defined]
            record.ParseFromString(parts)
            out.append(record)
    return out


def test_wandb_export_writes_offline_files_wandb_sync_accepts(tmp_path: Path) -> None:
    card_run(tmp_path / "runs")
    out = _export(tmp_path, str(tmp_path / "wb"), "--to", "wandb", "--wandb-project", "lab")
    folder = Path(out["wandb_dir"])
    assert folder.parent == tmp_path / "wb" / "wandb" and folder.name.startswith("offline-run-")
    records = _wandb_records(next(folder.glob("run-*.wandb")))
    kinds = [r.WhichOneof("record_type") for r in records]
    run = records[kinds.index("run")].run
    assert run.display_name == RUN_ID and run.project == "lab" and run.run_group == "spiral"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["optim.lr"] == 0.01 and config["reprise.commit"] == "a" * 40
    history = [
        {
            item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
            for item in r.history.item
        }
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [(h["_step"], h["train_loss"]) for h in history][:2] == [(1, 2.0), (2, 1.0)]
    saved = {
        f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files
    }
    assert {"model_card.md", "manifest.json"} <= saved
    assert (folder / "files" / "model_card.md").is_file()
    # wandb's own CLI recognises it as a run to upload (the upload itself needs a server).
    listed = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Would sync 1 run" in listed.stdout + listed.stderr, listed.stderr


def test_missing_tracker_library_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    real = importlib.import_module

    def refuse(name: str, package: str | None = None) -> Any:
        if name.split(".")[0] == "mlflow":
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", refuse)
    card_run(tmp_path / "runs")
    result = CliRunner().invoke(
        cli, ["export", RUN_ID, "--to", "mlflow", "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == ExportError.exit_code == 3
    assert "pip install 'reprise[mlflow]'" in result.stderr and "Traceback" not in result.output


def test_export_usage_errors(tmp_path: Path) -> None:
    card_run(tmp_path / "runs")
    base = ["export", RUN_ID, "--runs-dir", str(tmp_path / "runs")]
    for args, words in (
        (["--to", "wandb"], "name the folder"),
        ([str(tmp_path / "x"), "--to", "mlflow"], "tracking URI, not a folder"),
    ):
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 2 and words in result.stderr, result.output
    running = card_run(tmp_path / "other", status="running")
    with pytest.raises(UsageError, match="still running"):
        export_run(running, "tensorboard", dest=tmp_path / "tb")
