"""`reprise bundle export --with-outputs` of outputs the job hard-linked: named, not carried."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import zstandard

from reprise.commands.bundle.export import code_state_of, export_bundle
from reprise.commands.inputs import code_dir
from reprise.core import keys
from reprise.edges.docker import Engine
from reprise.edges.hashing import manifest_of_run

from ...recordcraft import valid_record, write_run


class _Engine:
    """Just what export asks of an engine: the image's layers and `docker save`."""

    def image_attrs(self, image_id: str) -> dict[str, Any]:
        return {"Id": image_id, "RootFS": {"Layers": []}}

    def save(self, image_id: str) -> Iterator[bytes]:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"[]"))
        yield raw.getvalue()


ENGINE = cast(Engine, _Engine())


def _members(bundle: Path) -> list[str]:
    with (
        bundle.open("rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        return [info.name for info in tar]


def _run(tmp_path: Path) -> tuple[Path, Path]:
    runs = tmp_path / "runs"
    record = valid_record()
    run = write_run(runs, record)
    code = code_dir(runs, code_state_of(record, b""))
    code.mkdir(parents=True)
    (code / "train.py").write_text("print('hi')\n")
    for name in ("outputs", "work"):
        (run / name).mkdir()
    (run / "outputs/a.txt").write_text("same")
    os.link(run / "outputs/a.txt", run / "work/b.txt")
    (run / "outputs/c.txt").write_text("alone")
    (run / keys.RUN_CONFIG).write_text("lr: 0.1\n")
    return run, tmp_path / "out.reprise"


def test_hard_linked_outputs_are_named_not_bundled(tmp_path: Path) -> None:
    run, bundle = _run(tmp_path)
    (run / keys.RUN_MANIFEST).write_text(manifest_of_run(run).to_json())
    said: list[str] = []
    header = export_bundle(ENGINE, run, bundle, with_outputs=True, repo=None, say=said.append)
    names = _members(bundle)
    assert "run/outputs/c.txt" in names
    assert "run/outputs/a.txt" not in names and "run/work/b.txt" not in names
    assert any("2 hard-linked outputs are named in the manifest, not bundled" in s for s in said)
    assert {m.path for m in header.members} >= {"run/outputs/c.txt", "run/manifest.json"}


def test_a_manifest_that_calls_a_hard_link_a_file_does_not_crash_the_export(
    tmp_path: Path,
) -> None:
    """A run recorded before hard links were a kind of their own: the file is skipped with a
    warning, the export succeeds."""
    run, bundle = _run(tmp_path)
    manifest = manifest_of_run(run).to_json().replace('"kind": "hardlink",', "")
    (run / keys.RUN_MANIFEST).write_text(manifest)
    said: list[str] = []
    export_bundle(ENGINE, run, bundle, with_outputs=True, repo=None, say=said.append)
    assert "run/outputs/a.txt" not in _members(bundle)
    assert any("not bundled: outputs/a.txt is a file with 2 hard links" in s for s in said), said


class _Meter:
    def __init__(self) -> None:
        self.total: int | None = -1
        self.done = 0

    def start(self, total: int | None) -> None:
        self.total = total

    def __call__(self, count: int) -> None:
        self.done += count


def test_export_and_import_count_their_bytes_for_a_progress_bar(tmp_path: Path) -> None:
    from reprise.commands.bundle.inspect import open_stream

    run, bundle = _run(tmp_path)
    (run / "outputs/big.bin").write_bytes(os.urandom(3 << 20))
    (run / keys.RUN_MANIFEST).write_text(manifest_of_run(run).to_json())
    packed = _Meter()
    export_bundle(
        ENGINE, run, bundle, with_outputs=True, repo=None, say=lambda _: None, meter=packed
    )
    assert packed.total is not None and packed.total >= 3 << 20  # the outputs' sizes
    assert packed.done >= 3 << 20  # counted before compression, tar headers included
    read = _Meter()
    with open_stream(bundle, read) as stream:
        while stream.read(1 << 20):
            pass
    assert read.total == read.done == bundle.stat().st_size
