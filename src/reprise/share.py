"""Sharing images through a registry, by digest."""

from __future__ import annotations

from collections.abc import Callable

from reprise.engine import Engine, parse_image_ref
from reprise.errors import UsageError
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
