"""Sharing images through a registry, by digest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reprise.engine import Engine, parse_image_ref
from reprise.errors import ImageUnavailableError, UsageError
from reprise.runstore import read_record, write_record
from reprise.settings import Settings

Say = Callable[[str], None]


def registry_for(settings: Settings, flag: str | None) -> str:
    registry = flag or settings.registry
    if not registry:
        raise UsageError(
            "no registry given",
            hint="pass --registry HOST[:PORT][/NAMESPACE], set REPRISE_REGISTRY, or [tool.reprise] registry",
        )
    return registry.rstrip("/")


def push_image(engine: Engine, local_tag: str, registry: str, say: Say) -> str:
    """Tag ``local_tag`` under ``registry``, push it, and return ``repo@sha256:...``."""
    repo, tag, _ = parse_image_ref(local_tag)
    remote_repo = f"{registry}/{repo}"
    engine.tag(local_tag, remote_repo, tag or "latest")
    say(f"pushing {remote_repo}:{tag}")
    digest = engine.push(remote_repo, tag or "latest", progress=say)
    return f"{remote_repo}@{digest}"


def push_run(engine: Engine, run_dir: Path, registry: str, say: Say) -> str:
    """Push a run's image by its recorded id, and record the registry digest in run.json."""
    record = read_record(run_dir)
    image = record["image"]
    if engine.image_attrs(image["id"]) is None:
        raise ImageUnavailableError(
            f"the run's image {image['id']} is not in this engine",
            hint="pull it (reprise reproduce --registry ...) or import the run's bundle first",
        )
    repo, tag, _ = parse_image_ref(image["tag"])
    local = f"{repo}:{tag}"
    if (engine.image_attrs(local) or {}).get("Id") != image["id"]:
        engine.tag(image["id"], repo, tag or "latest")
    ref = push_image(engine, local, registry, say)
    record["image"]["repo_digest"] = ref
    record["image"]["registry"] = registry
    write_record(run_dir, record)
    return ref
