"""`reprise build` and `reprise run` against the real engine, on the example project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reprise.cli import cli
from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.project import Project, load_project

from ..engine_fixtures import quiet, run_example
from ..projects import git


class SpyEngine(Engine):
    """The real engine, counting build calls."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner._client)
        self.builds = 0

    def build(self, *args: Any, **kwargs: Any) -> str:
        self.builds += 1
        return super().build(*args, **kwargs)


def test_second_build_calls_no_docker_build(
    project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    spy = SpyEngine(engine)
    again = builder.build(project, spy, quiet)
    assert spy.builds == 0
    assert not again.built
    assert again.image_id == image.image_id
    attrs = engine.image_attrs(image.plan.tag)
    assert attrs is not None
    labels = attrs["Config"]["Labels"]
    assert labels["org.reprise.spec-hash"] == image.plan.spec_hash
    assert labels["org.reprise.lock-hash"] == image.plan.lock_hash


def test_ca_bundle_is_absent_from_the_image(engine: Engine, image: builder.BuildResult) -> None:
    out = engine.run_capture(
        image.image_id, ["sh", "-c", "ls /tmp; test ! -e /tmp/reprise-ca-bundle.pem && echo absent"]
    )
    assert out.strip().endswith("absent")
    history = engine._client.api.history(image.image_id)  # type: ignore[no-untyped-call]
    final_stage = [h["CreatedBy"] for h in history]
    assert not any("ca-bundle" in step for step in final_stage)


@pytest.fixture(scope="module")
def first_run(
    project: Project, engine: Engine, image: builder.BuildResult
) -> tuple[Path, dict[str, Any]]:
    return run_example(project, engine, image)


def test_run_succeeds_with_a_complete_record(
    first_run: tuple[Path, dict[str, Any]], image: builder.BuildResult
) -> None:
    run_dir, record = first_run
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    for key in (
        "run_id",
        "experiment",
        "command",
        "created_at",
        "started_at",
        "finished_at",
        "seed",
        "threads",
        "environment",
        "host",
        "runtime",
        "manifest",
    ):
        assert record[key] is not None, key
    img = record["image"]
    assert img["tag"] == image.plan.tag and img["id"] == image.image_id
    assert img["base_digest"].startswith("sha256:") and img["lock_hash"].startswith("sha256:")
    assert img["dockerfile_hash"].startswith("sha256:")
    code = record["code"]
    assert len(code["commit"]) == 40 and code["dirty"] is False and code["branch"] == "main"
    assert record["config"]["hash"].startswith("sha256:")
    assert record["seed"] == 1234 and record["seed_source"] == "config"
    assert record["environment"]["image"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert record["environment"]["run"]["REPRISE_SEED"] == "1234"
    assert record["environment"]["run"]["OMP_NUM_THREADS"] == "1"
    assert record["host"]["docker_version"] and record["host"]["gpu"]["present"] in (True, False)
    runtime = record["runtime"]
    assert runtime["torch"]["version"].startswith("2.13.0")
    assert runtime["torch"]["num_threads"] == 1
    assert runtime["torch"]["deterministic_algorithms"] is True
    assert sorted(runtime["seeded"]) == ["numpy", "python", "torch"]
    assert any(p.startswith("torch==") for p in runtime["packages"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"]]
    assert "checkpoints/final.pt" in paths and "logs/metrics.jsonl" in paths
    assert paths == sorted(paths) and manifest["algorithm"] == "blake3"
    for name in ("config.yaml", "Dockerfile", "uv.lock", "logs/run.log"):
        assert (run_dir / name).is_file(), name
    assert "epoch  60" in (run_dir / "logs/run.log").read_text()
    assert not (run_dir / "FAILED").exists()


def test_same_seed_gives_identical_manifests(
    first_run: tuple[Path, dict[str, Any]],
    project: Project,
    engine: Engine,
    image: builder.BuildResult,
) -> None:
    run_dir, _ = first_run
    second_dir, second = run_example(project, engine, image)
    assert second["run_id"] != first_run[1]["run_id"]
    assert (run_dir / "manifest.json").read_text() == (second_dir / "manifest.json").read_text()
    third_dir, _ = run_example(project, engine, image, seed=99)
    assert (third_dir / "manifest.json").read_text() != (run_dir / "manifest.json").read_text()


def test_unseeded_script_is_deterministic(
    project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    a, _ = run_example(project, engine, image, command=["python", "unseeded.py"])
    b, _ = run_example(project, engine, image, command=["python", "unseeded.py"])
    c, _ = run_example(project, engine, image, command=["python", "unseeded.py"], seed=5)
    draws = (a / "outputs/draws.txt").read_text()
    assert draws == (b / "outputs/draws.txt").read_text()
    assert draws != (c / "outputs/draws.txt").read_text()


def test_failing_command(project: Project, engine: Engine, image: builder.BuildResult) -> None:
    run_dir, record = run_example(project, engine, image, command=["python", "fail.py"])
    assert record["status"] == "failed"
    assert record["exit_code"] == 3
    failed = (run_dir / "FAILED").read_text()
    assert "exit code: 3" in failed and "about to fail" in failed


def test_dirty_tree_refused_then_run_with_patch(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    (example / "note.txt").write_text("untracked file\n")
    (example / "fail.py").write_text("print('patched, not failing')\n")
    try:
        result = CliRunner().invoke(
            cli, ["--project", str(example), "run", "--", "python", "fail.py"]
        )
        assert result.exit_code == 4 and "uncommitted changes" in result.stderr
        project = load_project(example)
        run_dir, record = run_example(
            project,
            engine,
            image,
            command=["sh", "-c", "python fail.py && cat note.txt"],
            allow_dirty=True,
        )
        assert record["status"] == "succeeded"
        assert record["code"]["dirty"] is True and record["code"]["patch_hash"].startswith(
            "sha256:"
        )
        patch = (run_dir / "code.patch").read_text()
        assert "note.txt" in patch and "patched, not failing" in patch
        log = (run_dir / "logs/run.log").read_text()
        assert "patched, not failing" in log and "untracked file" in log
    finally:
        (example / "note.txt").unlink()
        git(example, "checkout", "--", "fail.py")


def test_cli_run_json_and_exit_code(example: Path, image: builder.BuildResult) -> None:
    result = CliRunner().invoke(
        cli, ["--project", str(example), "run", "--json", "train.epochs=10"]
    )
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "succeeded"
    assert record["config"]["overrides"] == ["train.epochs=10"]
    assert "epoch  10" in result.stderr  # the job's output is progress: stderr
    failing = CliRunner().invoke(cli, ["--project", str(example), "run", "--", "python", "fail.py"])
    assert failing.exit_code == 1
    assert "status   failed (exit code 3)" in failing.stdout
