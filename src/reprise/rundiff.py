"""`reprise diff`: what differs between two runs, outputs and inputs alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise import keys
from reprise.config import load_config_text
from reprise.divergence import diff_mappings
from reprise.engine import Engine
from reprise.manifest import compare_manifests
from reprise.reproduce import explain, load_manifest
from reprise.runstore import read_record

# Values that differ between any two runs by construction.
_PER_RUN_ENV = {keys.ENV_RUN_ID}


def _section(a: dict[str, Any], b: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return diff_mappings(a.get(name) or {}, b.get(name) or {})


def compare_runs(a_dir: Path, b_dir: Path, engine: Engine | None) -> dict[str, Any]:
    a, b = read_record(a_dir), read_record(b_dir)
    diff = compare_manifests(load_manifest(a_dir), load_manifest(b_dir))
    image_id = (
        a["image"]["id"] if engine is not None and engine.image_attrs(a["image"]["id"]) else None
    )
    reports, details = explain(engine, image_id, a_dir, b_dir, diff)
    config_a = load_config_text((a_dir / keys.RUN_CONFIG).read_text(), source="a")
    config_b = load_config_text((b_dir / keys.RUN_CONFIG).read_text(), source="b")
    env_a = {k: v for k, v in a["environment"]["run"].items() if k not in _PER_RUN_ENV}
    env_b = {k: v for k, v in b["environment"]["run"].items() if k not in _PER_RUN_ENV}
    image_keys = ("id", "base_digest", "lock_hash", "dockerfile_hash", "spec_hash")
    inputs = {
        "config": diff_mappings(config_a, config_b),
        "image": diff_mappings(
            {k: a["image"].get(k) for k in image_keys}, {k: b["image"].get(k) for k in image_keys}
        ),
        "code": diff_mappings(
            {k: a["code"].get(k) for k in ("commit", "dirty", "patch_hash", "subdir")},
            {k: b["code"].get(k) for k in ("commit", "dirty", "patch_hash", "subdir")},
        ),
        "seed": diff_mappings(
            {"seed": a["seed"], "threads": a["threads"]},
            {"seed": b["seed"], "threads": b["threads"]},
        ),
        "environment": diff_mappings(
            {"image": a["environment"]["image"], "run": env_a},
            {"image": b["environment"]["image"], "run": env_b},
        ),
        "command": diff_mappings({"command": a["command"]}, {"command": b["command"]}),
        "host": _section(a, b, "host"),
    }
    summary = [f"a        {a['run_id']}", f"b        {b['run_id']}"]
    summary.append("outputs  identical" if diff.identical else "outputs  differ")
    summary += [f"  - {line}" for line in details]
    for name, changes in inputs.items():
        for c in changes:
            summary.append(f"{name:<8} {c['key']}: {c['a']!r} -> {c['b']!r}")
    return {
        "a": a["run_id"],
        "b": b["run_id"],
        "outputs": diff.to_dict(),
        "reports": reports,
        "details": details,
        "inputs": inputs,
        "summary": summary,
    }
