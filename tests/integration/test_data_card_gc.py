"""Datasets (mounted read-only, hashed, checked on reproduce), the model card, ls and gc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.project import load_project
from reprise.edges.runstore import read_record

from ..engine_fixtures import Cleanup, container_state, run_example
from ..projects import copy_example, init_repo

READ_DATA = (
    "from pathlib import Path\n"
    "from reprise_runtime import outputs_dir\n"
    "values = Path('/workspace/data/train/values.txt').read_text().split()\n"
    "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
    "(d / 'sum.txt').write_text(str(sum(map(int, values))))\n"
    "try:\n"
    "    Path('/workspace/data/train/new.txt').write_text('x')\n"
    "    print('data is WRITABLE')\n"
    "except OSError:\n"
    "    print('data is read-only')\n"
)


@pytest.fixture(scope="module")
def data_project(tmp_path_factory: pytest.TempPathFactory, image: builder.BuildResult) -> Path:
    root = copy_example(tmp_path_factory.mktemp("data") / "spiral")
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("threads = 1", 'threads = 1\ndata = { train = "../dataset" }')
    )
    (root / "readdata.py").write_text(READ_DATA)
    init_repo(root)
    dataset = root.parent / "dataset"
    dataset.mkdir()
    (dataset / "values.txt").write_text("1 2 3 4\n")
    return root


def _cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(root), *args])


def test_dataset_is_mounted_read_only_hashed_and_checked(
    data_project: Path, image: builder.BuildResult
) -> None:
    result = _cli(data_project, "run", "--json", "--", "python", "readdata.py")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    data = record["data"]["train"]
    assert data["files"] == 1 and data["bytes"] == 8 and data["hash"].startswith("sha256:")
    run_dir = data_project / "runs" / "spiral" / record["run_id"]
    assert (run_dir / "outputs" / "sum.txt").read_text() == "10"
    assert "data is read-only" in (run_dir / "logs" / "run.log").read_text()

    same = _cli(data_project, "reproduce", record["run_id"], "--json")
    assert same.exit_code == 0 and json.loads(same.stdout)["verdict"] == "identical"

    dataset = data_project.parent / "dataset" / "values.txt"
    dataset.write_text("1 2 3 5\n")
    try:
        refused = _cli(data_project, "reproduce", record["run_id"])
        assert refused.exit_code == 3
        assert "the data differs from the run's: train:" in refused.stderr
        assert "--allow-data-change" in refused.stderr
        anyway = _cli(data_project, "reproduce", record["run_id"], "--allow-data-change", "--json")
        assert anyway.exit_code == 5  # diverged
        verdict = json.loads(anyway.stdout)
        assert verdict["data_changed"] == ["train"]
        assert verdict["files"]["changed"] == ["outputs/sum.txt"]
        assert verdict["details"][0].startswith("data changed (--allow-data-change): train")
    finally:
        dataset.write_text("1 2 3 4\n")


def test_missing_dataset_path_is_a_clear_error(data_project: Path) -> None:
    dataset = data_project.parent / "dataset"
    runs_before = sorted((data_project / "runs").rglob("run.json"))
    dataset.rename(dataset.with_name("moved"))
    try:
        result = _cli(data_project, "run")
        assert result.exit_code == 4  # the project's settings name a path that is not there
        assert "dataset 'train':" in result.stderr and "does not exist" in result.stderr
        assert sorted((data_project / "runs").rglob("run.json")) == runs_before
    finally:
        dataset.with_name("moved").rename(dataset)


def test_finished_run_has_a_model_card_naming_image_and_command(
    example: Path,
    engine: Engine,
    image: builder.BuildResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir, record = run_example(
        load_project(example), engine, image, overrides=("train.epochs=10",)
    )
    card = (run_dir / "model_card.md").read_text()
    assert record["image"]["id"] in card
    assert f"reprise reproduce {record['run_id']}" in card
    assert "![Training curves: loss (" in card and "](training_curves.png)" in card
    assert (run_dir / "training_curves.png").is_file()
    # The real run, exported after the fact into a local MLflow store and read back.
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exported = _cli(
        example, "export", record["run_id"], "--to", "mlflow", "--tracking-uri", uri, "--json"
    )
    assert exported.exit_code == 0, exported.stderr
    mlflow_run = MlflowClient(tracking_uri=uri).get_run(
        json.loads(exported.stdout)["mlflow_run_id"]
    )
    assert mlflow_run.data.tags["reprise.image.id"] == record["image"]["id"]
    assert mlflow_run.data.params["train.epochs"] == "10" and mlflow_run.data.metrics
    listed = _cli(example, "ls", "--json", "-n", "3")
    assert listed.exit_code == 0
    assert record["run_id"] in [r["run_id"] for r in json.loads(listed.stdout)]
    reproduced = _cli(example, "reproduce", record["run_id"], "--json")
    assert reproduced.exit_code == 0
    card = (run_dir / "model_card.md").read_text()
    assert "reproduced bit-for-bit on" in card
    assert "Not reproduced yet." not in card
    shown = _cli(example, "show", record["run_id"])
    assert "verdict    reproduced bit-for-bit" in shown.stdout


def test_gc_lists_then_removes_only_unreferenced_project_images(
    example: Path, engine: Engine, image: builder.BuildResult, base_image: str, cleanup: Cleanup
) -> None:
    import io
    import tarfile

    def build(labels: str, tag: str) -> str:
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            data = f"FROM {base_image}\nLABEL {labels}\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        return engine.build(context, cleanup.image(tag))

    orphan = build("org.reprise.project=spiral org.reprise.test=gc", "reprise/spiral:gc-orphan")
    # What a build leaves of its build stage (the builder's cache), labelled by reprise.
    stage = build("org.reprise.project=spiral org.reprise.stage=build", "reprise-test/stage:gc")
    dry = _cli(example, "gc", "--json")
    assert dry.exit_code == 0, dry.stderr
    listed = json.loads(dry.stdout)
    ids = [i["id"] for i in listed["images"]]
    assert orphan in ids and image.image_id not in ids and listed["removed"] is False
    kinds = {i["id"]: i["kind"] for i in listed["images"]}
    assert kinds[orphan] == "image" and kinds[stage] == "build stage"
    human = _cli(example, "gc")
    assert f"would remove build stage {stage}" in human.stdout
    assert engine.image_attrs(orphan) is not None
    done = _cli(example, "gc", "--yes", "--json")
    assert done.exit_code == 0
    assert orphan in [i["id"] for i in json.loads(done.stdout)["images"]]
    assert engine.image_attrs(orphan) is None
    assert engine.image_attrs(image.image_id) is not None
    assert read_record(Path(json.loads(_cli(example, "ls", "--json", "-n", "1").stdout)[0]["path"]))


def test_gc_removes_stopped_containers_of_finished_runs(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    from reprise.edges.container_config import ContainerSpec

    run_dir, record = run_example(load_project(example), engine, image, command=["true"])
    assert record["status"] == "succeeded"
    left = engine.create(
        ContainerSpec(
            image=image.image_id,
            command=["true"],
            environment={},
            mounts=[],
            working_dir="/",
            user="1000:1000",
            labels={
                "org.reprise.run-dir": str(run_dir.resolve()),
                "org.reprise.run-id": run_dir.name,
            },
        )
    )
    dry = json.loads(_cli(example, "gc", "--json").stdout)
    assert left in dry["containers"]
    assert container_state(engine, left) is not None
    done = json.loads(_cli(example, "gc", "--yes", "--json").stdout)
    assert left in done["containers"]
    assert container_state(engine, left) is None
