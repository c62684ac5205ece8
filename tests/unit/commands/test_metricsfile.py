"""Metrics written anywhere in a run's outputs are found (the card, show, compare and diff
all read them through metrics_text); a link planted there is never followed."""

from __future__ import annotations

import os
from pathlib import Path

from reprise.commands.card import metrics_text
from reprise.core import keys
from reprise.core.metrics import pick_metrics_file
from reprise.edges.hashing import manifest_of_run

from ...recordcraft import valid_record, write_run

LINE = '{"step": 1, "val_loss": 0.5}\n'


def test_logs_first_then_the_shallowest_metrics_jsonl() -> None:
    assert (
        pick_metrics_file(["outputs/metrics.jsonl", "logs/metrics.jsonl"], "logs/metrics.jsonl")
        == "logs/metrics.jsonl"
    )
    assert (
        pick_metrics_file(
            ["outputs/eval/metrics.jsonl", "outputs/metrics.jsonl", "outputs/a.jsonl"],
            "logs/metrics.jsonl",
        )
        == "outputs/metrics.jsonl"
    )
    assert pick_metrics_file(["outputs/a.txt"], "logs/metrics.jsonl") is None


def test_a_metrics_file_in_outputs_is_read_and_a_planted_link_is_not(tmp_path: Path) -> None:
    run = write_run(tmp_path, valid_record())
    (run / "outputs/eval").mkdir(parents=True)
    (run / "outputs/eval/metrics.jsonl").write_text(LINE)
    assert metrics_text(run) == ""  # no manifest yet (still running): logs/metrics.jsonl only
    (run / keys.RUN_MANIFEST).write_text(manifest_of_run(run).to_json())
    assert metrics_text(run) == LINE
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"step": 1, "stolen": 1}\n')
    (run / "outputs/eval/metrics.jsonl").unlink()
    os.symlink(secret, run / "outputs/eval/metrics.jsonl")  # swapped after the manifest
    assert metrics_text(run) == ""
