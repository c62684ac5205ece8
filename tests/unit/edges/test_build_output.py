"""The build's output: whole lines (the engine's stream breaks them anywhere), one progress
line per step with the time the step took, the whole log in the log file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from reprise.core.errors import BuildError
from reprise.edges.docker import Engine

STREAM: list[dict[str, Any]] = [
    {"stream": "Step 1/2 : FROM base\n ---> 1234\n"},
    {
        "stream": "Step 2/2 : RUN uv sync\n ---> Running in abc\nResolved 13 packages\n + filelock==4"
    },
    {"stream": ".2"},
    {"stream": ".12\n\n + six==1.17.0\n"},
    {"aux": {"ID": "sha256:" + "f" * 64}},
    {"stream": "Successfully built ffff\n"},
]


class _Api:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def build(self, **_: Any) -> Iterator[dict[str, Any]]:
        yield from self.chunks

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:" + "f" * 64}


class _Client:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.api = _Api(chunks)
        self.images = self


def _engine(chunks: list[dict[str, Any]]) -> Engine:
    engine = Engine(_Client(chunks), version="test")  # type: ignore[arg-type]
    engine.image_attrs = lambda ref: {"Id": "sha256:" + "f" * 64}  # type: ignore[method-assign]
    return engine


def test_lines_broken_by_the_stream_reach_the_log_whole_and_progress_is_per_step() -> None:
    said: list[str] = []
    log = io.StringIO()
    image = _engine(STREAM).build(io.BytesIO(b""), "t:1", progress=said.append, log=log)
    assert image == "sha256:" + "f" * 64
    assert " + filelock==4.2.12" in log.getvalue().splitlines()
    assert said[0] == "Step 1/2 : FROM base"
    assert said[1].startswith("  done in ") and said[1].endswith(" s")
    assert said[2] == "Step 2/2 : RUN uv sync"
    assert len(said) == 4 and all("filelock" not in s for s in said)


def test_a_failed_build_names_the_step_and_the_log_file() -> None:
    chunks: list[dict[str, Any]] = [
        {"stream": "Step 1/1 : RUN false\n"},
        {"error": "The command returned 1"},
    ]
    log = io.StringIO()
    log.name = "/tmp/x.log"
    with pytest.raises(BuildError) as caught:
        _engine(chunks).build(io.BytesIO(b""), "t:1", log=log)
    assert caught.value.step == "RUN false"
    assert "/tmp/x.log" in (caught.value.hint or "")
    assert "The command returned 1" in log.getvalue()
