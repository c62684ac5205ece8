"""`reprise push` names what it pushes: the run's own tag when this engine holds it for the
run's image, else the run's own name, never a tag a record (a bundle's) merely claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.commands.push import push_run
from reprise.edges.runstore import read_record

from ...recordcraft import valid_record, write_run

IMAGE = "sha256:" + "a" * 64


class _Engine:
    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags  # reference -> image id
        self.pushed: list[str] = []

    def image_attrs(self, ref: str) -> dict[str, Any] | None:
        found = ref if ref == IMAGE else self.tags.get(ref)
        return {"Id": found} if found else None

    def tag(self, image: str, repo: str, tag: str) -> None:
        self.tags[f"{repo}:{tag}"] = image

    def push(self, repo: str, tag: str, progress: Any = None) -> str:
        self.pushed.append(f"{repo}:{tag}")
        return "sha256:" + "d" * 64


def _run(tmp_path: Path, tag: str) -> Path:
    record = valid_record(image={**valid_record()["image"], "id": IMAGE, "tag": tag})
    return write_run(tmp_path / "runs", record)


def test_a_run_built_here_is_pushed_under_its_tag(tmp_path: Path) -> None:
    run = _run(tmp_path, "reprise/mine:0123456789abcdef")
    engine = _Engine({"reprise/mine:0123456789abcdef": IMAGE})
    ref = push_run(engine, run, "127.0.0.1:5000/team", lambda _: None)  # type: ignore[arg-type]
    assert engine.pushed == ["127.0.0.1:5000/team/reprise/mine:0123456789abcdef"]
    assert ref == "127.0.0.1:5000/team/reprise/mine@sha256:" + "d" * 64
    assert read_record(run)["image"]["repo_digest"] == ref


def test_a_tag_the_engine_holds_for_another_image_is_never_moved(tmp_path: Path) -> None:
    run = _run(tmp_path, "reprise/victim:0123456789abcdef")
    victim = "sha256:" + "b" * 64
    engine = _Engine({"reprise/victim:0123456789abcdef": victim})
    said: list[str] = []
    push_run(engine, run, "127.0.0.1:5000/team", said.append)  # type: ignore[arg-type]
    run_id = read_record(run)["run_id"]
    assert engine.pushed == [f"127.0.0.1:5000/team/reprise/runs:{run_id}"]
    assert engine.tags["reprise/victim:0123456789abcdef"] == victim
    assert "127.0.0.1:5000/team/reprise/victim:0123456789abcdef" not in engine.tags
    assert any("pushing it as reprise/runs:" in line for line in said)
