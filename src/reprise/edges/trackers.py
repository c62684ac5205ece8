"""Writers of an :class:`~reprise.core.tracking.Export` into MLflow, TensorBoard and W&B, each
through the tracker's own library, imported only here (the extras ``reprise[mlflow]``,
``reprise[tensorboard]``, ``reprise[wandb]``). Artifacts arrive as bytes already read from
the run (bounded, never through a link) and are written to a scratch folder first."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reprise.core.errors import ExportError, UsageError
from reprise.core.tracking import Export

# Library to import -> (extra, what it is called).
_EXTRAS = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}
MAX_TEXT_SUMMARY = 1 << 20


def require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS[module.split(".")[0]]
        raise ExportError(
            f"exporting to {extra} needs the {extra} library, which is not installed ({exc})",
            hint=f"pip install 'reprise[{extra}]' (or: uv add 'reprise[{extra}]'; "
            f"uv tool install 'reprise[{extra}]')",
        ) from None


@contextlib.contextmanager
def _staged(artifacts: Mapping[str, bytes]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reprise-export-") as tmp:
        for name, data in artifacts.items():
            (Path(tmp) / name).write_bytes(data)
        yield Path(tmp)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def to_mlflow(
    export: Export, artifacts: Mapping[str, bytes], *, tracking_uri: str | None, note: str
) -> dict[str, Any]:
    """One MLflow run in the experiment of the same name; refused when the tracking store
    already holds this reprise run (its ``reprise.run_id`` tag)."""
    require("mlflow")
    import logging

    for name in ("mlflow", "alembic"):  # their INFO lines (database set-up) are not ours
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    run_id: str | None = None
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        uri = client.tracking_uri
        experiment = client.get_experiment_by_name(export.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(export.experiment)
        )
        found = client.search_runs(
            [experiment_id], f"tags.`reprise.run_id` = '{export.run_id}'", max_results=1
        )
        if found:
            raise UsageError(
                f"run {export.run_id} is already in MLflow ({uri}) as run "
                f"{found[0].info.run_id} of experiment {export.experiment!r}",
                hint="delete that MLflow run to export it again",
            )
        tags = {**export.tags, "mlflow.source.git.commit": export.tags["reprise.commit"]}
        if note:
            tags["mlflow.note.content"] = note
        run = client.create_run(
            experiment_id, start_time=export.start_ms, tags=tags, run_name=export.run_id
        )
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in sorted(export.params.items())]
        for batch in _chunks(params, 100):
            client.log_batch(run_id, params=batch, synchronous=True)
        metrics = [
            Metric(name, value, export.start_ms, step)
            for name, points in export.metrics.items()
            for step, value in points
        ]
        for batch in _chunks(metrics, 1000):
            client.log_batch(run_id, metrics=batch, synchronous=True)
        with _staged(artifacts) as folder:
            client.log_artifacts(run_id, str(folder), artifact_path="reprise")
        client.set_terminated(run_id, export.tracker_status, end_time=export.end_ms)
    except BaseException as exc:
        if run_id is not None:  # not left half-made, where it would block the next try
            with contextlib.suppress(Exception):
                client.delete_run(run_id)
        if not isinstance(exc, MlflowException):
            raise
        raise ExportError(
            f"MLflow refused the export: {exc.message}",
            hint="check --tracking-uri (a server URL, or sqlite:///mlflow.db for a local store)",
        ) from None
    return {"tracking_uri": uri, "experiment_id": experiment_id, "mlflow_run_id": run_id}


def to_tensorboard(export: Export, texts: Mapping[str, str], dest: Path) -> dict[str, Any]:
    """Event files under ``dest/<experiment>/<run id>`` (one TensorBoard run per reprise run):
    every metric as scalars at its steps, and ``texts`` (the card, the config) as text."""
    require("tensorboard")
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.text.metadata import create_summary_metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir = dest / export.experiment / export.run_id
    if logdir.exists() and any(logdir.iterdir()):
        raise UsageError(
            f"{logdir} already holds event files: TensorBoard would show this run twice",
            hint=f"remove {logdir} to export it again",
        )
    logdir.mkdir(parents=True, exist_ok=True)
    wall = export.start_ms / 1000
    writer = EventFileWriter(str(logdir), filename_suffix=".reprise")
    try:
        for name, points in export.metrics.items():
            for step, value in points:
                summary = Summary(value=[Summary.Value(tag=name, simple_value=value)])
                writer.add_event(Event(wall_time=wall, step=step, summary=summary))
        for tag, text in texts.items():
            tensor = TensorProto(
                dtype=7,  # DT_STRING
                string_val=[text[:MAX_TEXT_SUMMARY].encode("utf-8")],
                tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
            )
            value = Summary.Value(tag=tag, metadata=create_summary_metadata(tag, ""), tensor=tensor)
            writer.add_event(Event(wall_time=wall, step=0, summary=Summary(value=[value])))
    finally:
        writer.close()
    return {"logdir": str(logdir)}


def to_wandb(
    export: Export, artifacts: Mapping[str, bytes], dest: Path, *, project: str | None
) -> dict[str, Any]:
    """A W&B offline run under ``dest/wandb/`` written by the wandb library itself, with no
    network (``mode="offline"``): what ``wandb sync`` uploads later."""
    require("wandb")
    import wandb

    settings = wandb.Settings(
        mode="offline",
        console="off",
        silent=True,
        disable_git=True,  # the run's commit is in its config, not this folder's
        save_code=False,
        disable_job_creation=True,
        x_disable_stats=True,
        x_disable_meta=True,
        x_disable_machine_info=True,
        x_save_requirements=False,
    )
    dest.mkdir(parents=True, exist_ok=True)
    config = {**export.config, **export.tags}
    try:
        run = wandb.init(
            dir=str(dest),
            project=project or export.experiment,
            name=export.run_id,
            group=export.experiment,
            job_type="train",
            tags=["reprise", export.status],
            notes=f"exported by reprise from run {export.run_id}",
            config=config,
            settings=settings,
        )
        try:
            for step, values in export.steps():
                run.log(values, step=step)
            for name, points in export.metrics.items():
                run.summary[name] = points[-1][1]
            for name, data in artifacts.items():
                (Path(run.dir) / name).write_bytes(data)
                run.save(str(Path(run.dir) / name), base_path=run.dir, policy="now")
            folder = Path(run.dir).parent
        finally:
            run.finish(exit_code=0 if export.status == "succeeded" else 1)
    except wandb.Error as exc:
        raise ExportError(f"wandb refused the export: {exc}") from None
    return {"wandb_dir": str(folder), "sync": f"wandb sync {folder}"}
