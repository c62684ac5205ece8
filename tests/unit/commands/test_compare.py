"""`reprise compare`: the config keys that differ, final and best metrics in their declared
direction, learning rates left out, sorting, --only-changed, JSON and CSV; a hostile config
or metrics file compared by nothing it could do."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reprise.cli import cli
from reprise.commands.compare import compare, csv_rows
from reprise.core.errors import SettingsError, UsageError
from reprise.core.settings import load_settings

from ...projects import tiny_project
from ...recordcraft import valid_record, write_run


def _metrics(*lines: dict[str, Any]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def _run(runs: Path, suffix: str, config: str, metrics: str, **record: Any) -> Path:
    run_id = f"2026112{len(list(runs.glob('*/*')))}-140000-000001-{suffix}"
    run = write_run(runs, valid_record(run_id=run_id, experiment="tiny", **record))
    (run / "config.yaml").write_text(config)
    (run / "logs").mkdir()
    (run / "logs" / "metrics.jsonl").write_text(metrics)
    return run


@pytest.fixture()
def runs(tmp_path: Path) -> list[Path]:
    base = tmp_path / "runs"
    return [
        _run(
            base,
            "aaaa0000",
            "optim:\n  lr: 0.1\n  momentum: 0.9\nepochs: 3\n",
            _metrics(
                {"step": 1, "val_loss": 1.0, "acc": 0.5, "lr": 0.1, "score": 9.0},
                {"step": 2, "val_loss": 0.4, "acc": 0.7, "lr": 0.05, "score": 3.0},
                {"step": 3, "val_loss": 0.6, "acc": 0.6, "lr": 0.01, "score": 5.0},
            ),
            name="high",
        ),
        _run(
            base,
            "bbbb0000",
            "optim:\n  lr: 0.01\n  momentum: 0.9\nepochs: 3\n",
            _metrics({"step": 1, "val_loss": 0.9, "acc": 0.8, "score": 1.0}),
            seed=8,
        ),
        _run(
            base,
            "cccc0000",
            "optim:\n  lr: 0.01\n  momentum: 0.9\nepochs: 3\nextra: '=cmd|x'\n",
            _metrics({"step": 1, "val_loss": 0.2, "acc": 0.8}),
            reproduces="20261120-140000-000001-aaaa0000",
            reproduction={"verdict": "identical"},
            status="failed",
        ),
    ]


def test_the_config_keys_that_differ_and_every_metric(runs: list[Path]) -> None:
    result = compare(runs, directions={"score": "min"})
    assert result["config_keys"] == ["extra", "optim.lr"]
    assert result["metrics"] == {"acc": "max", "score": "min", "val_loss": "min"}
    first, second, third = result["runs"]
    assert second["seed"] == 8 and second["config"] == {"optim.lr": 0.01}
    assert first["name"] == "high" and first["config"] == {"optim.lr": 0.1}
    assert first["metrics"]["val_loss"] == {
        "final": 0.6, "best": 0.4, "best_step": 2.0, "goal": "min", "count": 3
    }  # fmt: skip
    assert first["metrics"]["acc"]["best"] == 0.7
    assert first["metrics"]["score"]["best"] == 3.0  # declared min, though named like a max
    assert "lr" not in result["metrics"]  # a learning rate logged beside the metrics
    assert "score" not in third["metrics"]
    assert third["verdict"] == "identical" and third["reproduces"].endswith("aaaa0000")
    assert result["seed_differs"] is True


def test_sort_puts_the_best_first_and_runs_without_the_metric_last(runs: list[Path]) -> None:
    by_loss = compare(runs, sort="val_loss")["runs"]
    assert [r["run_id"][-8:] for r in by_loss] == ["cccc0000", "aaaa0000", "bbbb0000"]
    by_acc = compare(runs, sort="acc")["runs"]
    assert [r["run_id"][-8:] for r in by_acc] == ["bbbb0000", "cccc0000", "aaaa0000"]
    by_score = compare(runs, sort="score", directions={"score": "min"})["runs"]
    assert [r["run_id"][-8:] for r in by_score] == ["bbbb0000", "aaaa0000", "cccc0000"]
    with pytest.raises(UsageError, match="no run logged a metric 'nope'") as caught:
        compare(runs, sort="nope")
    assert "acc, score, val_loss" in str(caught.value.hint)


def test_only_changed_leaves_out_metrics_that_are_the_same(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    same = _metrics({"acc": 0.5, "loss": 1.0})
    a = _run(base, "aaaa0000", "x: 1\n", same)
    b = _run(base, "bbbb0000", "x: 1\n", _metrics({"acc": 0.5, "loss": 2.0}))
    assert set(compare([a, b])["metrics"]) == {"acc", "loss"}
    result = compare([a, b], only_changed=True)
    assert set(result["metrics"]) == {"loss"} and result["config_keys"] == []


def test_a_hostile_config_is_not_compared_and_says_why(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    a = _run(base, "aaaa0000", bomb, "not json\n" + _metrics({"acc": 1}))
    b = _run(base, "bbbb0000", "a: 1\n", "")
    (b / "logs" / "metrics.jsonl").unlink()
    (b / "logs" / "metrics.jsonl").symlink_to("/etc/passwd")
    result = compare([a, b])
    assert result["config_keys"] == ["a"]
    assert len(result["notes"]) == 1 and "config not compared" in result["notes"][0]
    assert result["runs"][1]["metrics"] == {}


def test_csv_has_every_value_and_no_formula(runs: list[Path]) -> None:
    rows = csv_rows(compare(runs))
    header = rows[0]
    assert header[:8] == [
        "run_id", "name", "experiment", "status", "verdict", "reproduces", "resumes", "seed"
    ]  # fmt: skip
    assert "config.optim.lr" in header and "val_loss.best" in header
    third = dict(zip(header, rows[3], strict=True))
    assert third["config.extra"] == "'=cmd|x"  # a spreadsheet would run it otherwise
    assert third["val_loss.final"] == "0.2" and third["acc.best_step"] == "1.0"
    assert dict(zip(header, rows[1], strict=True))["config.extra"] == ""


def test_the_cli_table_json_and_csv(runs: list[Path]) -> None:
    root = tiny_project(runs[0].parents[2])
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("[tool.reprise]\n", '[tool.reprise]\nmetrics = { score = "min" }\n')
    )

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--project", str(root), "compare", *args])

    table = invoke()
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["RUN", "NAME", "STATUS", "VERDICT", "ORIGIN"]
    assert "optim.lr" in lines[0] and "score best↓" in lines[0] and "acc best↑" in lines[0]
    assert lines[1].startswith("20261122-140000-000001-cccc0000")  # newest first
    assert "rerun of aaaa0000" in lines[1]
    sorted_json = json.loads(invoke("--sort", "score", "--json").stdout)
    assert [r["run_id"][-8:] for r in sorted_json["runs"]] == ["bbbb0000", "aaaa0000", "cccc0000"]
    picked = json.loads(invoke("high", "latest", "--json").stdout)
    assert [r["run_id"][-8:] for r in picked["runs"]] == ["aaaa0000", "cccc0000"]
    as_csv = list(csv.reader(io.StringIO(invoke("--csv").stdout)))
    assert as_csv[0][0] == "run_id" and len(as_csv) == 4
    changed = invoke("high", "bbbb0000", "--only-changed")
    assert "STATUS" not in changed.stdout.splitlines()[0]  # both succeeded
    both = invoke("--json", "--csv")
    assert both.exit_code == 2 and "give one" in both.stderr
    mixed = invoke("high", "-e", "tiny")
    assert mixed.exit_code == 2 and "one of them" in mixed.stderr
    nothing = invoke("-e", "nothing")
    assert nothing.exit_code == 2 and "no runs of experiment nothing" in nothing.stderr


def test_metric_directions_in_settings() -> None:
    def settings(metrics: object) -> Any:
        pyproject = {
            "project": {"name": "demo"},
            "tool": {"reprise": {"command": "python train.py", "metrics": metrics}},
        }
        return load_settings(Path("/p"), pyproject, {})

    assert settings({"val_loss": "min", "acc": "max"}).metrics == {"val_loss": "min", "acc": "max"}
    for bad in ({"acc": "up"}, ["acc"], {"": "min"}):
        with pytest.raises(SettingsError) as caught:
            settings(bad)
        assert caught.value.key == "metrics" and caught.value.exit_code == 4
