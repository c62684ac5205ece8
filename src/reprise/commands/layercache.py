"""What reprise keeps of the images it assembled, beside its cache: each image's layers (by
image id, for the runs that use it) and each heavy package's packed layer (by what it
depends on, so that a rebuild reuses it instead of copying and packing it again)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

from reprise.core.image import ImageInputs, ImagePlan, sha256
from reprise.core.templating import template_text
from reprise.edges.project import cache_dir
from reprise.edges.runstore import atomic_write


def heavy_keys(inputs: ImageInputs, plan: ImagePlan, base_digest_ref: str) -> dict[str, str]:
    """What each heavy package's layer depends on, hashed: the packing format, the base,
    the Python, uv, the build stage's template, and the pinned requirements (with their
    registry) the package is installed from."""
    from reprise.core.layers import LAYER_FORMAT

    template = sha256(template_text("Dockerfile.j2").encode())
    out = {}
    for name in (n.removeprefix("package ") for n in plan.layers if n.startswith("package ")):
        requirements = [
            text
            for text in plan.heavy_requirements.values()
            if any(line.startswith(f"{name}==") for line in text.splitlines())
        ]
        parts = {
            "format": LAYER_FORMAT,
            "base": base_digest_ref,
            "python": dataclasses.asdict(inputs.python),
            "uv": inputs.uv_version,
            "template": template,
            "requirements": requirements,
            "name": name,
        }
        out[name] = sha256(json.dumps(parts, sort_keys=True).encode()).split(":")[1]
    return out


def _layers_file(image_id: str) -> Path:
    return cache_dir() / "images" / f"{image_id.split(':')[-1]}.json"


def save_layers(image_id: str, layers: list[dict[str, Any]]) -> None:
    """What each layer of an image reprise assembled is (name, diff id, packages), kept by
    image id for the runs that use it."""
    with contextlib.suppress(OSError):
        atomic_write(_layers_file(image_id), json.dumps(layers, sort_keys=True), durable=False)


def load_layers(image_id: str) -> list[dict[str, Any]] | None:
    try:
        found = json.loads(_layers_file(image_id).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, list) else None
