"""`reprise gc`: remove a project's images that no run refers to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reprise import keys
from reprise.engine import Engine
from reprise.errors import EngineError
from reprise.listing import all_summaries

Say = Callable[[str], None]


@dataclass(frozen=True)
class Unreferenced:
    id: str
    tags: list[str]
    size: int


def unreferenced_images(engine: Engine, runs_dir: Path, project: str) -> list[Unreferenced]:
    """Images labelled with ``project`` whose id no run under ``runs_dir`` records."""
    referenced = {s.get("image_id") for s in all_summaries(runs_dir)}
    found = [
        Unreferenced(str(i["Id"]), sorted(i.get("RepoTags") or []), int(i.get("Size") or 0))
        for i in engine.images_with_label(f"{keys.LABEL_PROJECT}={project}")
        if i["Id"] not in referenced
    ]
    return sorted(found, key=lambda i: i.id)


def collect(
    engine: Engine, runs_dir: Path, project: str, *, remove: bool, say: Say
) -> dict[str, Any]:
    removed: list[Unreferenced] = []
    for image in unreferenced_images(engine, runs_dir, project):
        if remove:
            try:
                engine.remove_image(image.id, force=False)
            except EngineError as exc:  # in use by a container, say: report, go on
                say(f"warning: kept {image.id}: {exc.message}")
                continue
        removed.append(image)
    return {
        "images": [asdict(i) for i in removed],
        "bytes": sum(i.size for i in removed),
        "removed": remove,
    }
