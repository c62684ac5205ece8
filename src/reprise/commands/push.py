"""Sharing images through a registry, by digest."""

from __future__ import annotations

import re
from pathlib import Path

from reprise.core import keys, names
from reprise.core.errors import ImageUnavailableError, RecordError, UsageError
from reprise.core.progress import Say
from reprise.core.settings import Settings
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record, write_record

_LOCAL_TAG = re.compile(rf"{keys.IMAGE_REPO_PREFIX}/[a-z0-9]+(?:[._-][a-z0-9]+)*:[0-9a-f]{{8,64}}")


def registry_for(settings: Settings | None, flag: str | None) -> str:
    registry = flag or (settings.registry if settings else None)
    if not registry:
        raise UsageError(
            "no registry given",
            hint="pass --registry HOST[:PORT][/NAMESPACE], set REPRISE_REGISTRY, or [tool.reprise] registry",
        )
    return names.registry(registry.rstrip("/"), "--registry")


def push_image(engine: Engine, image: str, local_tag: str, registry: str, say: Say) -> str:
    """Tag ``image`` (an id or a tag) as ``registry/<local_tag>``, push it, and return
    ``repo@sha256:...``. Only the registry's name is tagged here: no local tag moves."""
    repo, tag, _ = names.parse_image_ref(local_tag)
    remote_repo = f"{names.registry(registry)}/{repo}"
    names.reference(f"{remote_repo}:{tag or 'latest'}", "the pushed name")
    engine.tag(image, remote_repo, tag or "latest")
    say(f"pushing {remote_repo}:{tag}")
    digest = engine.push(remote_repo, tag or "latest", progress=say)
    return f"{remote_repo}@{digest}"


def push_run(engine: Engine, run_dir: Path, registry: str, say: Say) -> str:
    """Push a run's image by its recorded id, and record the registry digest in run.json."""
    record = read_record(run_dir)
    image = record["image"]
    tag = str(image.get("tag") or "")
    if not _LOCAL_TAG.fullmatch(tag):
        raise RecordError(
            f"run {record['run_id']}: its image tag {tag!r} is not one reprise makes",
            path=str(run_dir),
            field="image.tag",
        )
    if engine.image_attrs(image["id"]) is None:
        raise ImageUnavailableError(
            f"the run's image {image['id']} is not in this engine",
            hint="pull it (reprise reproduce --registry ...) or import the run's bundle first",
        )
    held = engine.image_attrs(tag)
    if held is None or held.get("Id") != image["id"]:
        # The record names a tag this engine does not hold for that image (a bundle's run
        # may name any project's): pushed under the run's own name, never another's tag.
        tag = f"{keys.IMAGE_REPO_PREFIX}/runs:{record['run_id']}"
        say(f"the run's image is not {image.get('tag')} here: pushing it as {tag}")
    ref = push_image(engine, image["id"], tag, registry, say)
    record = read_record(run_dir)
    record["image"]["repo_digest"] = ref
    record["image"]["registry"] = registry
    write_record(run_dir, record)
    return ref


def push_run_to(run_dir: Path, registry: str, say: Say) -> str:
    """`reprise push`: push the run's image to ``registry`` on this machine's engine."""
    return push_run(Engine.from_env(), run_dir, registry, say)
