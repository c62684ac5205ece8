"""`reprise diff`: what differs between two runs, outputs and inputs alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.commands.verdict import explain, load_manifest
from reprise.core import keys
from reprise.core.config import config_hash, load_untrusted_config_text
from reprise.core.divergence import diff_mappings
from reprise.core.errors import ConfigError, RecordError, RepriseError
from reprise.core.manifest import compare_manifests
from reprise.core.progress import Say
from reprise.edges.runfiles import read_text_or_none
from reprise.edges.runstore import read_record
from reprise.execution.backend import Backend

# Values that differ between any two runs by construction.
_PER_RUN_ENV = {keys.ENV_RUN_ID}


def _section(a: dict[str, Any], b: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return diff_mappings(a.get(name) or {}, b.get(name) or {})


def _config_text(run_dir: Path) -> str:
    text = read_text_or_none(run_dir, keys.RUN_CONFIG, 16 << 20)
    if text is None:
        raise RecordError(f"{run_dir / keys.RUN_CONFIG} is missing or not a regular file")
    return text


def _configs(a_dir: Path, b_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The configs' differences, key by key; by hash alone (with a note) when either cannot
    be read as a plain config. A run's config.yaml may be the job's (Hydra's composed config)
    or a bundle's: it is parsed without aliases and within bounds."""
    texts = [_config_text(a_dir), _config_text(b_dir)]
    try:
        parsed = [
            load_untrusted_config_text(text, source=str(run_dir / keys.RUN_CONFIG))
            for text, run_dir in zip(texts, (a_dir, b_dir), strict=True)
        ]
    except ConfigError as exc:
        hashes = [{"hash": config_hash(text)} for text in texts]
        return diff_mappings(*hashes), [f"config compared by hash only: {exc.message}"]
    return diff_mappings(*parsed), []


def compare_runs(a_dir: Path, b_dir: Path, backend: Backend | None) -> dict[str, Any]:
    a, b = read_record(a_dir), read_record(b_dir)
    ma, mb = load_manifest(a_dir), load_manifest(b_dir)
    volatile = a.get("volatile") or []
    diff = compare_manifests(ma, mb, volatile)
    image_id = (
        a["image"]["id"] if backend is not None and backend.has_image(a["image"]["id"]) else None
    )
    kinds = ({e.path: e.kind for e in ma.files}, {e.path: e.kind for e in mb.files})
    reports, details = explain(backend, image_id, a_dir, b_dir, diff, kinds)
    config_changes, notes = _configs(a_dir, b_dir)
    volatile_b = b.get("volatile") or []
    if volatile_b != volatile:
        notes.append(
            f"run b declares other volatile outputs ({', '.join(volatile_b) or 'none'}): "
            f"a's are applied ({', '.join(volatile) or 'none'})"
        )
    if diff.volatile:
        shown = ", ".join(diff.volatile[:5]) + (" ..." if len(diff.volatile) > 5 else "")
        notes.append(f"{len(diff.volatile)} volatile files recorded, not compared: {shown}")
    env_a = {k: v for k, v in a["environment"]["run"].items() if k not in _PER_RUN_ENV}
    env_b = {k: v for k, v in b["environment"]["run"].items() if k not in _PER_RUN_ENV}
    image_keys = ("id", "base_digest", "lock_hash", "dockerfile_hash", "spec_hash")
    inputs = {
        "config": config_changes,
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
    summary.append(
        "outputs  identical"
        if diff.identical
        else "outputs  none to compare"
        if diff.nothing_compared
        else "outputs  differ"
    )
    summary += [f"  - {line}" for line in details]
    summary += [f"note     {note}" for note in notes]
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
        "notes": notes,
    }


def diff_runs(a: Path, b: Path, *, say: Say) -> dict[str, Any]:
    """`reprise diff`: compare two runs (tensors through the engine, when one answers; by hash
    alone otherwise)."""
    from reprise.execution import open_backend

    backend: Backend | None = None
    try:
        backend = open_backend()
    except RepriseError:
        say("no engine: tensor files are compared by hash only")
    return compare_runs(a, b, backend)
