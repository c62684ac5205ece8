"""A run's TensorBoard event files as its metrics: written here by TensorBoard's own writer,
read back as metrics.jsonl lines; hostile files (cut short, corrupt, huge tensors) keep what
came before and never expand anything."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from reprise.commands.metricsfile import run_metrics
from reprise.core.manifest import Entry, Manifest
from reprise.edges import tbevents
from reprise.edges.tbevents import TensorBoardMissing, scalar_records


def _scalar(tag: str, value: float) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, simple_value=value)


def _tensor(tag: str, value: float, dims: tuple[int, ...] = ()) -> summary_pb2.Summary.Value:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    tensor = tensor_pb2.TensorProto(dtype=1, tensor_shape=shape, float_val=[value])
    return summary_pb2.Summary.Value(tag=tag, tensor=tensor)


def _events(folder: Path, steps: list[tuple[int, list[summary_pb2.Summary.Value]]]) -> Path:
    writer = EventFileWriter(str(folder))
    for step, values in steps:
        writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def test_scalars_of_a_summary_writer_and_of_tf_summary_are_read_by_step(tmp_path: Path) -> None:
    path = _events(
        tmp_path / "tb",
        [
            (0, [_scalar("loss", 2.0), _tensor("acc", 0.5)]),
            (10, [_scalar("loss", 1.0), _tensor("acc", 0.75)]),
            (10, [_scalar("lr", 0.1)]),
            (20, [_tensor("huge", 1.0, dims=(1 << 40,)), _scalar("nan", float("nan"))]),
        ],
    )
    records = scalar_records({"outputs/tb/" + path.name: path.read_bytes()})
    assert records == [
        {"step": 0, "loss": 2.0, "acc": 0.5},
        {"step": 10, "loss": 1.0, "acc": 0.75, "lr": pytest.approx(0.1)},
    ]


def test_at_most_so_many_metric_names_are_taken(tmp_path: Path) -> None:
    from reprise.core.tracking import MAX_METRIC_NAMES

    values = [_scalar(f"m{i}", 1.0) for i in range(MAX_METRIC_NAMES + 50)]
    path = _events(tmp_path, [(1, values)])
    (record,) = scalar_records({"e/" + path.name: path.read_bytes()})
    assert len(record) == MAX_METRIC_NAMES + 1  # and "step"


def test_writers_in_several_folders_name_their_metrics_by_folder(tmp_path: Path) -> None:
    train = _events(tmp_path / "train", [(1, [_scalar("loss", 3.0)])])
    val = _events(tmp_path / "val", [(1, [_scalar("loss", 4.0)])])
    records = scalar_records(
        {
            f"outputs/runs/train/{train.name}": train.read_bytes(),
            f"outputs/runs/val/{val.name}": val.read_bytes(),
        }
    )
    assert records == [{"step": 1, "train/loss": 3.0, "val/loss": 4.0}]


def test_a_file_cut_short_or_corrupt_keeps_what_came_before(tmp_path: Path) -> None:
    path = _events(tmp_path, [(1, [_scalar("loss", 3.0)]), (2, [_scalar("loss", 2.0)])])
    data = path.read_bytes()
    assert scalar_records({"e/f": data[:-3]})[-1] == {"step": 1, "loss": 3.0}
    records = tbevents._records(data, masked_crc32c)
    cut = len(data) - (len(records[-1]) + 16)  # where the last record's length starts
    flipped = bytearray(data)
    flipped[cut] ^= 0xFF  # its length, no longer matching its checksum
    assert scalar_records({"e/f": bytes(flipped)})[-1] == {"step": 1, "loss": 3.0}
    length = struct.pack("<Q", 1 << 62)  # a well-formed header claiming 4 EiB: nothing read
    huge = length + struct.pack("<I", masked_crc32c(length)) + b"\0" * 8
    assert scalar_records({"e/f": huge + data}) == []
    assert scalar_records({"e/f": b"not an event file at all"}) == []


def test_a_run_that_logged_only_to_tensorboard_has_its_metrics_found(tmp_path: Path) -> None:
    run = tmp_path / "run"
    path = _events(run / "outputs" / "tb", [(5, [_scalar("val_loss", 0.25)])])
    rel = path.relative_to(run).as_posix()
    manifest = Manifest("blake3", (Entry(rel, path.stat().st_size, "0" * 64),))
    (run / "manifest.json").write_text(manifest.to_json())
    metrics = run_metrics(run)
    assert json.loads(metrics.text) == {"step": 5, "val_loss": 0.25}
    assert metrics.source == "TensorBoard event files in `outputs/tb`"
    assert metrics.note is None


def test_without_tensorboard_the_card_says_what_it_could_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprise.commands import metricsfile

    def missing(files: object) -> list[dict[str, object]]:
        raise TensorBoardMissing

    monkeypatch.setattr(tbevents, "scalar_records", missing)
    (tmp_path / "outputs/tb").mkdir(parents=True)
    (tmp_path / "outputs/tb/events.out.tfevents.1.host").write_bytes(b"x")
    found = metricsfile._from_events(tmp_path, ["outputs/tb/events.out.tfevents.1.host"])
    assert found.text == ""
    assert found.note is not None and "reprise[tensorboard]" in found.note
