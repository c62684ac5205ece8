"""Scalars from the TensorBoard event files a job wrote (torch.utils.tensorboard's
SummaryWriter, TensorFlow's tf.summary), decoded with TensorBoard's own protocol buffers and
checksum (the `reprise[tensorboard]` extra, imported only here).

The bytes come from the caller, read bounded and never through a link: the job wrote them,
so they are hostile. The framing (TFRecord: length, its checksum, the event, its checksum)
is checked record by record, and reading stops at the first record that does not check out
(a file cut short by a crash keeps what came before). The length's checksum is checked,
not the event's: TensorBoard's is pure Python (0.2 s a MiB, paid by every `show`), and it
would prove nothing against a job, which writes whatever events it likes. Only scalars are
taken: a ``simple_value``, or a one-element float tensor, never a tensor TensorBoard would
expand; at most MAX_METRIC_NAMES names.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

from reprise.core.tracking import MAX_METRIC_NAMES

MAX_EVENTS = 1_000_000  # records read from all the files together
_HEADER = 12  # length (8 bytes) and its masked CRC-32C (4)


class TensorBoardMissing(Exception):
    """The `tensorboard` package is not installed: event files cannot be read."""


def scalar_records(files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Metrics records (as a metrics.jsonl holds them: ``{"step": N, name: value, ...}``, one
    per step, in step order) from ``files`` (path in the run -> bytes). When the event files
    lie in more than one folder (a writer per folder, as TensorBoard's "runs"), each metric's
    name starts with its folder's path below the folders' common parent."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except Exception:  # noqa: BLE001 - absent, or a protobuf it cannot work with
        raise TensorBoardMissing from None
    folders = sorted({path.rpartition("/")[0] for path in files})
    common = _common_parent(folders)
    steps: dict[int, dict[str, Any]] = {}
    names: set[str] = set()
    budget = MAX_EVENTS
    for path in sorted(files):
        folder = path.rpartition("/")[0]
        prefix = "" if len(folders) == 1 else folder[len(common) :].strip("/") + "/"
        for payload in _records(files[path], masked_crc32c):
            budget -= 1
            if budget < 0:
                break
            try:
                event = event_pb2.Event.FromString(payload)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError and kin: a bad record ends it
                break
            for value in event.summary.value:
                number = _scalar(value)
                name = prefix + value.tag
                if number is None or not value.tag:
                    continue
                if name not in names:
                    if len(names) >= MAX_METRIC_NAMES:
                        continue
                    names.add(name)
                steps.setdefault(event.step, {"step": event.step})[name] = number
    return [steps[step] for step in sorted(steps)]


def _records(data: bytes, crc: Any) -> list[bytes]:
    out = []
    pos = 0
    while pos + _HEADER <= len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        start = pos + _HEADER
        end = start + length
        if header_crc != crc(header) or end + 4 > len(data):
            break
        out.append(data[start:end])
        pos = end + 4
    return out


def _scalar(value: Any) -> float | None:
    """A summary value's number: its simple_value, or a one-element float tensor's."""
    if value.HasField("simple_value"):
        number = float(value.simple_value)
    elif value.HasField("tensor"):
        tensor = value.tensor
        if any(dim.size != 1 for dim in tensor.tensor_shape.dim):
            return None
        if tensor.dtype == 1 and len(tensor.float_val) == 1:  # DT_FLOAT
            number = float(tensor.float_val[0])
        elif tensor.dtype == 2 and len(tensor.double_val) == 1:  # DT_DOUBLE
            number = float(tensor.double_val[0])
        elif tensor.dtype in (1, 2) and len(tensor.tensor_content) in (4, 8):
            kind = "<f" if tensor.dtype == 1 else "<d"
            if struct.calcsize(kind) != len(tensor.tensor_content):
                return None
            (number,) = struct.unpack(kind, tensor.tensor_content)
        else:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _common_parent(folders: list[str]) -> str:
    if not folders:
        return ""
    parts = [f.split("/") for f in folders]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common)
