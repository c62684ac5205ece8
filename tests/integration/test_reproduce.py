"""`reprise reproduce` and `reprise diff` against the real engine and the local registry."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.commands import build as builder
from reprise.commands.verdict import compare_tensors
from reprise.core.names import parse_image_ref
from reprise.edges.docker import Engine
from reprise.edges.project import Project, load_project
from reprise.edges.runstore import read_record, write_record
from reprise.execution.local import LocalBackend

from ..engine_fixtures import run_example
from ..projects import git

REGISTRY = "127.0.0.1:5000/reprise-test"


def _cli(example: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(example), *args])


def test_reproduce_pulls_by_digest_and_is_identical(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, record = run_example(project, engine, image, overrides=("train.epochs=20",))
    pushed = _cli(example, "push", run_dir.name, "--registry", REGISTRY)
    assert pushed.exit_code == 0, pushed.stderr
    ref = pushed.stdout.strip()
    assert ref.startswith(f"{REGISTRY}/reprise/spiral@sha256:")
    assert read_record(run_dir)["image"]["repo_digest"] == ref
    repo, tag, _ = parse_image_ref(image.plan.tag)
    try:
        engine.remove_image(image.image_id, force=True)
        assert engine.image_attrs(image.image_id) is None
        result = _cli(example, "reproduce", run_dir.name, "--json")
        assert result.exit_code == 0, result.stderr
        verdict = json.loads(result.stdout)
        assert verdict["verdict"] == "identical"
        assert verdict["image"]["source"] == f"pulled {ref}"
        assert verdict["files"]["same"] == len(
            json.loads((run_dir / "manifest.json").read_text())["files"]
        )
        assert verdict["target"]["guaranteed"] is True
        rerun = read_record(Path(verdict["rerun_dir"]))
        assert rerun["reproduces"] == record["run_id"]
        assert rerun["reproduction"]["verdict"] == "identical"
        assert rerun["image"]["id"] == record["image"]["id"]
        assert read_record(run_dir)["reproductions"][-1]["verdict"] == "identical"
        # its inputs are the project's as it stands: tagged so, and the next build reuses it
        assert f"tagged the pulled image {image.plan.tag}" in result.stderr
        assert (engine.image_attrs(image.plan.tag) or {}).get("Id") == image.image_id
        rebuilt = _cli(example, "build", "--json")
        assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["built"] is False
    finally:
        if engine.image_attrs(image.image_id) is not None:
            engine.tag(image.image_id, repo, tag or "latest")  # keep the shared image for others
    assert engine.image_attrs(image.plan.tag) is not None


def test_wall_clock_output_diverges_naming_only_that_file(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, _ = run_example(project, engine, image, command=["python", "clock.py"])
    result = _cli(example, "reproduce", run_dir.name, "--json")
    assert result.exit_code == 5, result.stderr  # diverged
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "diverged"
    assert verdict["files"]["changed"] == ["outputs/time.txt"]
    assert verdict["files"]["missing"] == [] and verdict["files"]["extra"] == []
    human = _cli(example, "reproduce", run_dir.name)
    assert human.exit_code == 5
    assert "verdict  diverged" in human.stdout and "outputs/time.txt" in human.stdout
    assert "fixed.txt" not in human.stdout


def test_metrics_report_names_the_first_step_and_key(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, _ = run_example(project, engine, image, command=["python", "drift.py"])
    result = _cli(example, "reproduce", run_dir.name, "--json")
    assert result.exit_code == 5
    verdict = json.loads(result.stdout)
    report = verdict["reports"]["logs/metrics.jsonl"]
    assert report["step"] == 5 and report["key"] == "loss" and report["line"] == 5
    assert report["abs_diff"] > 0
    assert any("(step 5), key 'loss'" in line for line in verdict["details"])


def test_checkpoint_tensor_perturbed(
    engine: Engine, image: builder.BuildResult, tmp_path: Path
) -> None:
    script = (
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))\n"
        "torch.save({'model': m.state_dict(), 'step': 7}, '/out/a/final.pt')\n"
        "sd = m.state_dict(); sd['1.weight'][0, 1] += 0.25\n"
        "torch.save({'model': sd, 'step': 7}, '/out/b/final.pt')\n"
    )
    from reprise.edges.container_config import Mount

    tmp_path.chmod(0o755)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub).chmod(0o777)
    engine.run_capture(
        image.image_id,
        ["python", "-c", script],
        mounts=[Mount(str(tmp_path), "/out", read_only=False)],
    )
    report = compare_tensors(
        LocalBackend(engine), image.image_id, tmp_path / "a/final.pt", tmp_path / "b/final.pt"
    )
    assert report["loadable"] is True
    assert [t["name"] for t in report["tensors"]] == ["model.1.weight"]
    tensor = report["tensors"][0]
    assert tensor["status"] == "changed" and tensor["elements_differing"] == 1
    assert tensor["max_abs_diff"] == pytest.approx(0.25, abs=1e-6)
    assert report["values"] == []


def test_image_gone_everywhere_exits_3_with_the_way_out(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, record = run_example(project, engine, image, overrides=("train.epochs=10",))
    orphan = run_dir.parent / (run_dir.name[:-8] + "0ff0ff00")
    shutil.copytree(run_dir, orphan)
    record = read_record(orphan)
    record["run_id"] = orphan.name
    record["image"]["id"] = "sha256:" + "0" * 64
    record["image"]["repo_digest"] = None
    write_record(orphan, record)
    result = _cli(example, "reproduce", orphan.name)
    assert result.exit_code == 3
    assert "could not be pulled" in result.stderr
    for way_out in ("--registry", "bundle", "--rebuild"):
        assert way_out in result.stderr
    assert "Traceback" not in result.stderr


def test_rebuild_reproduces_when_the_image_is_gone(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult
) -> None:
    run_dir, _ = run_example(project, engine, image, overrides=("train.epochs=10",))
    record = read_record(run_dir)
    record["image"]["id"] = "sha256:" + "1" * 64  # as if that image were lost
    write_record(run_dir, record)
    result = _cli(example, "reproduce", run_dir.name, "--rebuild", "--json")
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "identical"
    assert verdict["image"]["source"] == "rebuilt"
    # The layers are the recorded ones, byte for byte (the id was made up): proven, not assumed.
    assert verdict["image"]["environment"] == "identical"
    assert "environment identical: proven every layer's diff id" in result.stderr


def test_dirty_run_reproduces_from_its_patch(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    config = example / "config.yaml"
    original = config.read_text()
    config.write_text(original.replace("epochs: 60", "epochs: 15"))
    (example / "scratch.txt").write_text("an untracked file\n")
    try:
        run_dir, record = run_example(load_project(example), engine, image, allow_dirty=True)
    finally:
        git(example, "checkout", "--", "config.yaml")
        (example / "scratch.txt").unlink()
    assert record["code"]["dirty"] is True
    result = _cli(example, "reproduce", run_dir.name, "--json")
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "identical"
    rerun = read_record(Path(verdict["rerun_dir"]))
    assert rerun["code"]["patch_hash"] == record["code"]["patch_hash"]
    assert "epoch  15" in (Path(verdict["rerun_dir"]) / "logs/run.log").read_text()


def test_junit_one_case_per_run_and_diff(
    example: Path, project: Project, engine: Engine, image: builder.BuildResult, tmp_path: Path
) -> None:
    a, _ = run_example(project, engine, image, overrides=("train.epochs=10",))
    b, _ = run_example(project, engine, image, command=["python", "clock.py"])
    junit = tmp_path / "junit.xml"
    result = _cli(example, "reproduce", a.name, b.name, "--junit", str(junit))
    assert result.exit_code == 5  # one diverged
    root = ET.parse(junit).getroot()
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [a.name, b.name]
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    assert root.get("tests") == "2" and root.get("failures") == "1"

    same = _cli(example, "diff", a.name, a.name, "--json")
    assert same.exit_code == 0 and json.loads(same.stdout)["outputs"]["identical"] is True
    other, _ = run_example(project, engine, image, overrides=("train.epochs=10",), seed=77)
    differ = _cli(example, "diff", a.name, other.name, "--json")
    assert differ.exit_code == 5
    data: dict[str, Any] = json.loads(differ.stdout)
    assert {"key": "seed", "a": 1234, "b": 77, "only_in": None} in data["inputs"]["config"]
    assert "checkpoints/final.pt" in data["outputs"]["changed"]
    assert data["reports"]["checkpoints/final.pt"]["kind"] == "tensors"
