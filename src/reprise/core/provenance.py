"""The in-toto statement every run writes beside its run.json (``provenance.intoto.json``):
an SLSA provenance v1 predicate whose subject is the run's image, and whose resolved
dependencies are what defined it (the base by digest, uv.lock, the code at its commit).
Pure: built from the finished record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reprise import __version__

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/reprise-ml/reprise/run/v1"
BUILDER = "https://github.com/reprise-ml/reprise"
FILE = "provenance.intoto.json"


def _digest(value: str | None) -> dict[str, str]:
    """``{"sha256": hex}`` from ``sha256:hex`` (empty for anything else)."""
    if isinstance(value, str) and value.startswith("sha256:") and len(value) == 71:
        return {"sha256": value[7:]}
    return {}


def statement(record: Mapping[str, Any]) -> dict[str, Any]:
    image = record.get("image") or {}
    code = record.get("code") or {}
    config = record.get("config") or {}
    subject = {"name": str(image.get("tag") or image.get("id")), "digest": _digest(image.get("id"))}
    if image.get("repo_digest"):
        subject["uri"] = f"docker://{image['repo_digest']}"
    base = str(image.get("base_ref") or "")
    resolved = [
        {
            "uri": f"docker://{base}" if base else "base image",
            "digest": _digest(image.get("base_digest")),
        },
        {"name": "uv.lock", "digest": _digest(image.get("lock_hash"))},
    ]
    source = {
        "uri": f"git+{code['remote']}" if code.get("remote") else "git",
        "digest": {"gitCommit": str(code.get("commit"))},
    }
    if code.get("patch_hash"):
        source["annotations"] = {"patch": str(code["patch_hash"])}
    resolved.append(source)
    if image.get("dockerfile_hash"):
        resolved.append({"name": "Dockerfile", "digest": _digest(image["dockerfile_hash"])})
    byproducts = []
    if isinstance(record.get("manifest"), dict):
        byproducts.append(
            {"name": "manifest.json", "digest": _digest(record["manifest"].get("hash"))}
        )
    metadata: dict[str, Any] = {"invocationId": str(record.get("run_id"))}
    if record.get("started_at"):
        metadata["startedOn"] = record["started_at"]
    if record.get("finished_at"):
        metadata["finishedOn"] = record["finished_at"]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "command": list(record.get("command") or []),
                "config": {"hash": config.get("hash"), "overrides": config.get("overrides") or []},
                "seed": record.get("seed"),
                "threads": record.get("threads"),
                "determinism": record.get("determinism", "strict"),
            },
            "internalParameters": {
                "status": record.get("status"),
                "experiment": record.get("experiment"),
            },
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {"id": BUILDER, "version": {"reprise": __version__}},
            "metadata": metadata,
            "byproducts": byproducts,
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def statement_json(record: Mapping[str, Any]) -> str:
    return json.dumps(statement(record), indent=2, sort_keys=True) + "\n"
