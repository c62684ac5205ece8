"""The in-image runtime, run in real Python subprocesses the way an image runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprise.commands.build import runtime_files

SCRIPT = """
import json, random, sys
import numpy as np
print(json.dumps({"random": random.random(), "numpy": float(np.random.rand()),
                  "hash": hash("reprise")}))
"""


@pytest.fixture()
def runtime_lib(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    for name, data in runtime_files().items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_bytes(data)
    return lib


def _run(lib: Path, seed: str | None, record: Path | None = None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRISE_")}
    env["PYTHONPATH"] = str(lib)
    env["PYTHONHASHSEED"] = "0"
    if seed is not None:
        env["REPRISE_SEED"] = seed
    if record is not None:
        env["REPRISE_RUNTIME_RECORD"] = str(record)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    assert "warning" not in out.stderr, out.stderr
    result: dict[str, float] = json.loads(out.stdout)
    return result


def test_unseeded_script_becomes_deterministic(runtime_lib: Path) -> None:
    a = _run(runtime_lib, "1234")
    b = _run(runtime_lib, "1234")
    c = _run(runtime_lib, "99")
    assert a == b
    assert a["random"] != c["random"] and a["numpy"] != c["numpy"]


def test_without_a_seed_nothing_is_seeded(runtime_lib: Path) -> None:
    assert _run(runtime_lib, None)["random"] != _run(runtime_lib, None)["random"]


def test_runtime_record_written_once(runtime_lib: Path, tmp_path: Path) -> None:
    record = tmp_path / "runtime.json"
    _run(runtime_lib, "5", record)
    first = record.read_text()
    data = json.loads(first)
    assert data["seed"] == "5"
    assert data["seeded"] == ["numpy", "python"]
    assert any(p.lower().startswith("numpy==") for p in data["packages"])
    _run(runtime_lib, "6", record)
    assert record.read_text() == first  # the first process of a run wins


def test_metrics_logger_writes_sorted_json_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprise_runtime.metrics import MetricsLogger

    logger = MetricsLogger(tmp_path / "logs" / "metrics.jsonl")
    logger.log(step=1, loss=0.5, acc=1)
    logger.log(step=2, loss=float("nan"))
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    assert lines == ['{"acc": 1, "loss": 0.5, "step": 1}', '{"loss": "nan", "step": 2}']
