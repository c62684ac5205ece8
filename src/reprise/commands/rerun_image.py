"""The image a rerun uses: the recorded one (where jobs run, else pulled by digest and proven by
its id), or, with --rebuild, a new one built from the recorded uv.lock and Dockerfile inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from reprise.commands.build import RunImage, build, prepare, run_image
from reprise.core import keys, names
from reprise.core.errors import RecordError, RepriseError
from reprise.core.progress import Say, quiet
from reprise.core.settings import Settings
from reprise.edges.project import load_project
from reprise.edges.runfiles import read_regular
from reprise.execution.backend import Backend

RECORD_FILE_LIMIT = 64 << 20


def record_file(run_dir: Path, name: str) -> bytes:
    """One of reprise's own files in a run directory, read as a regular file, bounded."""
    try:
        found = read_regular(run_dir, name, RECORD_FILE_LIMIT)
    except OSError as exc:
        raise RecordError(f"{run_dir / name} cannot be read: {exc.strerror or exc}") from exc
    if found is None or found[1]:
        raise RecordError(
            f"{run_dir / name} is " + ("missing" if found is None else "too large"),
            path=str(run_dir / name),
        )
    return found[0]


def candidate_refs(image: dict[str, Any], registry: str | None) -> list[str]:
    """Where the recorded image may be pulled from, by digest where a digest is known."""
    refs: list[str] = []
    if image.get("repo_digest"):
        refs.append(str(image["repo_digest"]))
    if registry:
        registry = names.registry(registry, "--registry").rstrip("/")
        repo, tag, _ = names.parse_image_ref(str(image["tag"]))
        digest = str(image["repo_digest"]).rsplit("@", 1)[1] if image.get("repo_digest") else None
        refs.append(f"{registry}/{repo}@{digest}" if digest else f"{registry}/{repo}:{tag}")
    return list(dict.fromkeys(refs))


def locate_image(
    backend: Backend,
    record: dict[str, Any],
    registry: str | None,
    say: Say,
    *,
    root: Path | None = None,
) -> tuple[str, str]:
    """(image id, how it was had): the image with the recorded id where jobs run, else pulled
    by digest (or however the backend brings it), proven by its id; one pulled here is
    adopted by the project at ``root`` when its inputs are the project's (adopt_pulled)."""
    wanted = str(record["image"]["id"])
    source = backend.ensure_image(wanted, candidate_refs(record["image"], registry), say)
    adopt_pulled(backend, root, record, wanted, source, say)
    return wanted, source


def rebuild_image(
    record: dict[str, Any],
    run_dir: Path,
    code_path: Path,
    own: Settings | None,
    say: Say,
    *,
    force: bool = False,
) -> RunImage:
    from reprise.edges.docker import Engine

    say("rebuilding the environment from the recorded uv.lock and Dockerfile inputs")
    project = load_project(code_path)
    base = record["image"].get("base_ref") or project.settings.base_image
    settings = dataclasses.replace(
        project.settings,
        base_image=base,
        wheelhouse=own.wheelhouse if own else None,
        ca_bundle=own.ca_bundle if own else None,
    )
    project = dataclasses.replace(project, settings=settings)
    lock = record_file(run_dir, keys.RUN_LOCK)
    # Forced (build --verify): every step anew, none from the engine's cache, so that
    # "identical" speaks of an install made now, not of one cached from before.
    result = build(project, Engine.from_env(), say, lock=lock, force=force, no_cache=force)
    image = run_image(result)
    image.record["source"] = "rebuilt"
    image.record["rebuilt_from"] = record["image"]["id"]
    return image


def recorded_image(record: dict[str, Any], run_dir: Path, image_id: str, source: str) -> RunImage:
    image_record = dict(record["image"])
    image_record["source"] = source
    return RunImage(
        id=image_id,
        record=image_record,
        dockerfile=record_file(run_dir, keys.RUN_DOCKERFILE),
        lock=record_file(run_dir, keys.RUN_LOCK),
        env=dict(record["environment"]["image"]),
    )


def adopt_pulled(
    backend: Backend,
    root: Path | None,
    record: dict[str, Any],
    image_id: str,
    source: str,
    say: Say,
) -> None:
    """An image pulled by digest for a rerun on this machine, when the inputs that define it
    (its spec hash: lock, base, Python, template) are those of the project at ``root`` as it
    stands: tagged as the project's own build would tag it, so that the next `reprise build`
    reuses it instead of building a different one. A tag that exists is never moved; any
    doubt leaves the image untagged. Only an image this machine assembled before (its
    layers are in reprise's cache) is adopted: an image's labels say whatever its maker
    wrote, and a record (a bundle's) can name any image, so a label match proves nothing."""
    from reprise.commands.layercache import load_layers
    from reprise.edges.docker import Engine

    if root is None or not source.startswith("pulled") or backend.executor["kind"] != "local":
        return
    try:
        engine = Engine.from_env()
        _, plan, _ = prepare(load_project(root), engine, quiet)
        attrs = engine.image_attrs(image_id) or {}
    except RepriseError:
        return
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if plan.tag != record["image"].get("tag") or labels.get(keys.LABEL_SPEC_HASH) != plan.spec_hash:
        say(
            f"the pulled image is not what this project builds now (its inputs differ): not tagged {plan.tag}"
        )
        return
    if engine.image_attrs(plan.tag) is not None:
        return
    if load_layers(image_id) is None:
        say(f"the pulled image was not built on this machine: not tagged {plan.tag}")
        return
    repo, tag = plan.tag.rsplit(":", 1)
    engine.tag(image_id, repo, tag)
    say(f"tagged the pulled image {plan.tag}: the project's next build reuses it")
