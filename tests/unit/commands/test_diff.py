"""`reprise diff` on configs a job wrote: bounded, alias-free, by hash when unreadable."""

from __future__ import annotations

from pathlib import Path

from reprise.commands.diff import compare_runs
from reprise.core import keys
from reprise.core.config import config_hash
from reprise.core.manifest import ALGORITHM, Entry, Manifest

from ...recordcraft import valid_record, write_run
from ..core.test_config import ALIAS_BOMB, DEEP

_ENTRY = Entry("outputs/a.txt", 1, "0" * 64)


def _run(runs: Path, run_id: str, config: str, volatile: tuple[str, ...] = ()) -> Path:
    run = write_run(runs, valid_record(run_id=run_id, volatile=list(volatile)))
    log = Entry("outputs/t.log", 1, run_id[-1] * 64)
    (run / keys.RUN_MANIFEST).write_text(Manifest(ALGORITHM, (_ENTRY, log)).to_json())
    (run / keys.RUN_CONFIG).write_text(config)
    return run


def test_plain_configs_are_compared_key_by_key(tmp_path: Path) -> None:
    a = _run(tmp_path, "20261123-140000-000000-00000001", "lr: 0.1\nday: 2024-01-01\n")
    b = _run(tmp_path, "20261123-140000-000000-00000002", "lr: 0.2\nday: 2024-01-01\n")
    result = compare_runs(a, b, None)
    assert result["notes"] == []
    assert [c["key"] for c in result["inputs"]["config"]] == ["lr"]
    assert "  config       lr: 0.1 -> 0.2" in result["summary"]


def test_hostile_configs_fall_back_to_the_hash(tmp_path: Path) -> None:
    for hostile in (DEEP, ALIAS_BOMB):
        a = _run(tmp_path, "20261123-140000-000000-00000001", "lr: 0.1\n")
        b = _run(tmp_path, "20261123-140000-000000-00000002", hostile)
        result = compare_runs(a, b, None)
        (note,) = result["notes"]
        assert note.startswith("config compared by hash only:")
        assert result["inputs"]["config"] == [
            {
                "key": "hash",
                "a": config_hash("lr: 0.1\n"),
                "b": config_hash(hostile),
                "only_in": None,
            }
        ]
        assert f"note: {note}" in result["summary"]


def test_volatile_files_and_differing_patterns_are_noted(tmp_path: Path) -> None:
    a = _run(tmp_path, "20261123-140000-000000-00000001", "lr: 0.1\n", ("outputs/*.log",))
    b = _run(tmp_path, "20261123-140000-000000-00000002", "lr: 0.1\n")
    result = compare_runs(a, b, None)
    assert result["outputs"]["identical"] and result["outputs"]["volatile"] == ["outputs/t.log"]
    assert result["notes"] == [
        "run b declares other volatile outputs (none): a's are applied (outputs/*.log)",
        "1 volatile files recorded, not compared: outputs/t.log",
    ]
    assert not compare_runs(b, a, None)["outputs"]["identical"]  # b's (none) apply


def test_the_answer_reads_inputs_then_metrics_then_outputs_and_says_rerun_only_for_one(
    tmp_path: Path,
) -> None:
    a = _run(tmp_path, "20261123-140000-000000-00000001", "lr: 0.1\n")
    b = _run(tmp_path, "20261123-140000-000000-00000002", "lr: 0.2\n")
    for run, loss in ((a, 0.5), (b, 0.25)):
        (run / "logs").mkdir(exist_ok=True)
        (run / "logs/metrics.jsonl").write_text(
            f'{{"step": 1, "val_loss": 1.0}}\n{{"step": 2, "val_loss": {loss}}}\n'
        )
    (b / keys.RUN_MANIFEST).write_text(Manifest(ALGORITHM, (_ENTRY,)).to_json())
    result = compare_runs(a, b, None, directions={"val_loss": "min"})
    text = result["summary"]
    assert (
        text.index("inputs")
        < text.index("metrics         a     b")
        < text.index("outputs  differ: 1 of 2 files")
    )
    assert "  val_loss ↓  0.5  0.25" in text
    assert result["metrics"] == {
        "val_loss": {
            "goal": "min",
            "a": {"final": 0.5, "best": 0.5},
            "b": {"final": 0.25, "best": 0.25},
        }
    }
    assert "  outputs/t.log: missing from run b" in text and not result["rerun"]
    assert not any("rerun" in line for line in text)
    rerun = write_run(
        tmp_path,
        valid_record(run_id="20261123-140000-000000-00000003", reproduces=a.name),
    )
    (rerun / keys.RUN_MANIFEST).write_text(Manifest(ALGORITHM, (_ENTRY,)).to_json())
    (rerun / keys.RUN_CONFIG).write_text("lr: 0.1\n")
    again = compare_runs(a, rerun, None)
    assert again["rerun"] and "  outputs/t.log: missing from the rerun" in again["summary"]
