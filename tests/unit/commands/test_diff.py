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
    assert "config   lr: 0.1 -> 0.2" in result["summary"]


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
        assert f"note     {note}" in result["summary"]


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
