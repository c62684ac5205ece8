"""Fidelity, for real: a training killed at a random step and resumed ends bit-identical to
an uninterrupted one; a divergence injected at step 37 is named as step 37; determinism
modes strict, warn and off on an operation that has no deterministic implementation."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from reprise.commands import build as builder
from reprise.edges.runstore import read_record

from .test_reliability import _wait_for, reprise


def _record(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "internal error" not in result.stderr, result.stderr  # the job's own may print one
    return dict(json.loads(result.stdout))


def _run_dir(example: Path, record: dict[str, Any]) -> Path:
    return example / "runs" / "spiral" / str(record["run_id"])


def _manifest(run_dir: Path) -> dict[str, str]:
    files = json.loads((run_dir / "manifest.json").read_text())["files"]
    return {e["path"]: e.get("hash") or e.get("kind", "file") for e in files}


def _steps(run_dir: Path) -> int:
    path = run_dir / "logs" / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_a_run_killed_at_a_random_step_resumes_to_the_bytes_of_an_uninterrupted_one(
    example: Path, image: builder.BuildResult
) -> None:
    kill_at = random.randint(7, 33)
    started = reprise(
        example, "run", "--detach", "--json", "--seed", "11", "-e", "PAUSE=0.25",
        "--", "python", "resumable.py",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    record = _record(started)
    run_dir = _run_dir(example, record)
    _wait_for(lambda: _steps(run_dir) >= kill_at, timeout=120, what=f"step {kill_at}")
    subprocess.run(["docker", "kill", record["container"]["id"]], check=True, capture_output=True)
    waited = _record(reprise(example, "wait", record["run_id"], "--json"))
    assert waited["status"] == "failed", f"killed at step {kill_at}"
    resumed = reprise(example, "resume", record["run_id"], "--json")
    assert resumed.returncode == 0, (kill_at, resumed.stderr)
    chain = _record(resumed)
    assert chain["resumes"]["run_id"] == record["run_id"]
    assert chain["resumes"]["checkpoint_hash"].startswith("blake3:")
    assert "resumed from last.pt" in resumed.stderr
    whole = reprise(
        example, "run", "--json", "--seed", "11", "-e", "PAUSE=0", "--", "python", "resumable.py"
    )
    assert whole.returncode == 0, whole.stderr
    uninterrupted = _manifest(_run_dir(example, _record(whole)))
    resumed_files = _manifest(_run_dir(example, chain))
    assert {"checkpoints/best.pt", "checkpoints/last.pt", "outputs/model.pt"} <= set(resumed_files)
    assert "logs/fingerprints.jsonl" in resumed_files
    assert resumed_files == uninterrupted, f"killed at step {kill_at}"
    again = reprise(example, "reproduce", chain["run_id"], "--json")  # from the start, whole
    assert again.returncode == 0, (kill_at, again.stderr)
    assert json.loads(again.stdout)["verdict"] == "identical"


def test_a_divergence_injected_at_step_37_is_named_step_37(
    example: Path, image: builder.BuildResult
) -> None:
    done = reprise(
        example, "run", "--json", "--", "python", "drift37.py",
        env={"REPRISE_FINGERPRINT_EVERY": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = _record(done)
    assert record["fingerprint_every"] == 1
    again = reprise(example, "reproduce", record["run_id"], "--json")
    assert again.returncode == 5, again.stderr
    verdict = json.loads(again.stdout)
    assert verdict["verdict"] == "diverged"
    assert verdict["details"][0].startswith(
        "parameters first differ at step 37 (identical at step 36); differing: weight"
    ), verdict["details"]
    report = verdict["reports"]["logs/fingerprints.jsonl"]
    assert report["step"] == 37 and report["last_identical_step"] == 36


def test_bisect_narrows_a_divergence_between_sparse_fingerprints_to_step_37(
    example: Path, image: builder.BuildResult
) -> None:
    done = reprise(
        example, "run", "--json", "--", "python", "drift37ckpt.py",
        env={"REPRISE_FINGERPRINT_EVERY": "25"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = _record(done)
    assert record["fingerprint_every"] == 25
    again = reprise(example, "reproduce", record["run_id"], "--bisect", "--json")
    assert again.returncode == 5, again.stderr
    verdict = json.loads(again.stdout)
    assert verdict["details"][0].startswith(
        "parameters first differ at step 50 (identical at step 25)"
    ), verdict["details"]
    found = verdict["bisect"]
    assert found["finding"] == "nondeterministic", found
    assert (found["step"], found["last_identical_step"], found["params"]) == (37, 36, ["weight"])
    assert found["checkpoint"] == "checkpoints/step_20.pt" and found["from_step"] == 20
    assert verdict["details"][1] == (
        "bisect: two reruns from step 20 to step 50 on this machine: parameters first differ at "
        "step 37 (identical at step 36); differing: weight (the run is not deterministic here)"
    )
    assert "stopped after step 50 (bisect)" in again.stderr
    for n, pass_id in enumerate(found["runs"], start=1):
        pass_dir = _run_dir(example, {"run_id": pass_id})
        kept = read_record(pass_dir)
        assert kept["status"] == "succeeded"
        assert kept["bisect"] == {
            "of": record["run_id"],
            "reproduction": verdict["rerun_id"],
            "stop_after_step": 50,
            "pass": n,
        }
        assert kept["resumes"]["checkpoint"] == "checkpoints/step_20.pt"
        lines = (pass_dir / "logs" / "fingerprints.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == list(range(21, 51))


def test_strict_refuses_an_op_without_a_deterministic_implementation_warn_records_it(
    example: Path, image: builder.BuildResult
) -> None:
    strict = reprise(example, "run", "--json", "--", "python", "putop.py")
    assert strict.returncode == 1
    failed = _record(strict)
    assert failed["status"] == "failed" and failed["determinism"] == "strict"
    assert "put_" in failed["reason"] and 'determinism = "warn"' in failed["hint"]
    warn = reprise(example, "run", "--json", "--determinism", "warn", "--", "python", "putop.py")
    assert warn.returncode == 0, warn.stderr
    warned = _record(warn)
    assert warned["determinism"] == "warn"
    assert warned["runtime"]["nondeterministic_ops"] == ["put_"]
    assert warned["runtime"]["determinism"] == "warn"
    off = _record(
        reprise(example, "run", "--json", "--determinism", "off", "--", "python", "putop.py")
    )
    assert off["status"] == "succeeded" and off["runtime"]["nondeterministic_ops"] == []
    assert read_record(_run_dir(example, off))["determinism"] == "off"
