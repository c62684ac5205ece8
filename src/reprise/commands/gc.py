"""`reprise gc`: remove a project's images that no run refers to (and the copies of them saved
beside the runs for a Slurm cluster's nodes)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.errors import EngineError, RepriseError
from reprise.core.progress import Say
from reprise.core.sbatch import ARCHIVE_DIR
from reprise.edges.docker import Engine
from reprise.edges.runindex import all_summaries
from reprise.edges.runstore import read_record
from reprise.execution.backend import Backend

STAGE_LABEL = "org.reprise.stage"


@dataclass(frozen=True)
class Unreferenced:
    id: str
    tags: list[str]
    size: int
    kind: str = "image"  # "image" (a run's image no run records) or "build stage" (its cache)


def unreferenced_images(engine: Engine, runs_dir: Path, project: str) -> list[Unreferenced]:
    """Images labelled with ``project`` whose id no run under ``runs_dir`` records: images no
    run uses any more, and the build stages reprise's builds left behind (their cache)."""
    referenced = {s.get("image_id") for s in all_summaries(runs_dir)}
    found = [
        Unreferenced(
            str(i["Id"]),
            sorted(t for t in i.get("RepoTags") or [] if t != "<none>:<none>"),
            int(i.get("Size") or 0),
            "build stage" if (i.get("Labels") or {}).get(STAGE_LABEL) == "build" else "image",
        )
        for i in engine.images_with_label(f"{keys.LABEL_PROJECT}={project}")
        if i["Id"] not in referenced
    ]
    found += unreferenced_archives(runs_dir, referenced)
    return sorted(found, key=lambda i: (i.kind, i.id))


_ARCHIVE = re.compile(r"([0-9a-f]{64})\.tar")
ARCHIVE_KIND = "node archive"


def unreferenced_archives(runs_dir: Path, referenced: set[Any]) -> list[Unreferenced]:
    """The images saved beside the runs for a cluster's nodes (``execution.slurm``) that no run
    records; regular files only, never followed."""
    folder = runs_dir.joinpath(*ARCHIVE_DIR)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _ARCHIVE.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if f"sha256:{match.group(1)}" not in referenced:
            size = entry.stat(follow_symlinks=False).st_size
            found.append(Unreferenced(f"sha256:{match.group(1)}", [entry.path], size, ARCHIVE_KIND))
    return found


def stale_containers(backend: Backend) -> list[str]:
    """Stopped jobs reprise started whose run is finished or gone (left behind when the
    engine went away while a run was being finished)."""
    stale = []
    for container in backend.jobs():
        state = backend.state(container)
        if state is None or state.running:
            continue
        run_dir = Path(state.labels.get(keys.LABEL_RUN_DIR, ""))
        try:
            status = read_record(run_dir)["status"]
        except RepriseError:
            status = "gone"
        if status != "running":  # a `running` record is reconcile's to finish, not gc's
            stale.append(container)
    return sorted(stale)


def collect(runs_dir: Path, project: str, *, remove: bool, say: Say) -> dict[str, Any]:
    from reprise.execution import open_backend

    engine = Engine.from_env()
    backend = open_backend()
    containers = stale_containers(backend)
    if remove:
        for container in containers:
            backend.remove(container)
    removed: list[Unreferenced] = []
    for image in unreferenced_images(engine, runs_dir, project):
        if remove and image.kind == ARCHIVE_KIND:
            Path(image.tags[0]).unlink(missing_ok=True)
        elif remove:
            try:
                engine.remove_image(image.id, force=False)
            except EngineError as exc:  # in use by a container, say: report, go on
                say(f"warning: kept {image.id}: {exc.message}")
                continue
        removed.append(image)
    return {
        "containers": containers,
        "images": [asdict(i) for i in removed],
        "bytes": sum(i.size for i in removed),
        "removed": remove,
    }


def describe(result: dict[str, Any]) -> list[str]:
    """`reprise gc`'s answer for a person: one line per container and image, then what it
    comes to ("would remove 0 images (0 B) and 0 stopped containers")."""
    from reprise.core.display import human_bytes, plural

    verb = "removed" if result["removed"] else "would remove"
    lines = [
        f"{verb} stopped container {container[:12]} (its run has ended)"
        for container in result["containers"]
    ]
    for image in result["images"]:
        tags = f" {' '.join(image['tags'])}" if image["tags"] else ""
        lines.append(
            f"{verb} {image.get('kind') or 'image'} {image['id']}{tags} ({human_bytes(image['size'])})"
        )
    images, containers = len(result["images"]), len(result["containers"])
    total = (
        f"{verb} {plural(images, 'image')} ({human_bytes(result['bytes'])}) "
        f"and {plural(containers, 'stopped container')}"
    )
    if not result["removed"]:
        total += "; pass --yes to remove them" if images or containers else ": nothing to do"
    return [*lines, total]
