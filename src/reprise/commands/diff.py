"""`reprise diff`: what differs between two runs, outputs and inputs alike."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprise.commands.verdict import explain, load_manifest
from reprise.core import keys
from reprise.core.config import config_hash, load_untrusted_config_text
from reprise.core.diffview import render
from reprise.core.divergence import RERUN, TWO_RUNS, diff_mappings
from reprise.core.errors import ConfigError, RecordError, RepriseError
from reprise.core.manifest import compare_manifests
from reprise.core.progress import Say, quiet
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


def _metrics(a_dir: Path, b_dir: Path, directions: Mapping[str, str]) -> dict[str, Any]:
    """Each metric either run logged: final and best on each side, and which way is better."""
    from reprise.commands.compare import load

    sides = {"a": load(a_dir, directions).metrics, "b": load(b_dir, directions).metrics}
    out: dict[str, Any] = {}
    for side, metrics in sides.items():
        for name, m in metrics.items():
            out.setdefault(name, {"goal": m.goal})[side] = {"final": m.final, "best": m.best}
    return out


def compare_runs(
    a_dir: Path,
    b_dir: Path,
    backend: Backend | None,
    *,
    verbose: bool = False,
    directions: Mapping[str, str] | None = None,
    say: Say = quiet,
) -> dict[str, Any]:
    """Inputs, metrics and outputs of two runs. A run that reruns the other (`reproduce`) is
    called the rerun; any other pair is run a and run b."""
    a, b = read_record(a_dir), read_record(b_dir)
    sides = RERUN if b.get("reproduces") == a["run_id"] else TWO_RUNS
    ma, mb = load_manifest(a_dir), load_manifest(b_dir)
    volatile = a.get("volatile") or []
    diff = compare_manifests(ma, mb, volatile)
    image_id = (
        a["image"]["id"] if backend is not None and backend.has_image(a["image"]["id"]) else None
    )
    kinds = ({e.path: e.kind for e in ma.files}, {e.path: e.kind for e in mb.files})
    reports, details = explain(
        backend, image_id, a_dir, b_dir, diff, kinds, sides=sides, verbose=verbose, say=say
    )
    config_changes, notes = _configs(a_dir, b_dir)
    volatile_b = b.get("volatile") or []
    if volatile_b != volatile:
        notes.append(
            f"{sides[1]} declares other volatile outputs ({', '.join(volatile_b) or 'none'}): "
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
    result = {
        "a": a["run_id"],
        "b": b["run_id"],
        "rerun": sides == RERUN,
        "inputs": inputs,
        "metrics": _metrics(a_dir, b_dir, directions or {}),
        "outputs": diff.to_dict(),
        "reports": reports,
        "details": details,
        "notes": notes,
    }
    result["summary"] = render(result, verbose=verbose)
    return result


def diff_runs(
    a: Path,
    b: Path,
    *,
    say: Say,
    verbose: bool = False,
    directions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`reprise diff`: compare two runs (tensors through the engine, when one answers; by hash
    alone otherwise); ``verbose`` lists every tensor that differs."""
    from reprise.execution import open_backend

    backend: Backend | None = None
    try:
        backend = open_backend()
    except RepriseError:
        say("no engine: tensor files are compared by hash only")
    return compare_runs(a, b, backend, verbose=verbose, directions=directions, say=say)
