"""The model card: a run's record rendered through a Jinja template. Pure: the caller reads the
run's files and writes the card (see ``commands.card``)."""

from __future__ import annotations

import shlex
from typing import Any

from reprise.core.metrics import parse_records, summarize
from reprise.core.templating import render


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown duration"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def reproduction_line(r: dict[str, Any]) -> str:
    where = (
        f"{r['gpu']}, driver {r['driver']}"
        if r.get("gpu")
        else f"{r.get('cpu') or 'unknown CPU'} (CPU)"
    )
    day = str(r.get("at", ""))[:10]
    if r.get("verdict") == "identical":
        return f"reproduced bit-for-bit on {where}, {day} (run {r['run_id']})"
    if r.get("verdict") == "nothing-compared":
        return (
            f"rerun on {where}, {day} (run {r['run_id']}): nothing was compared, the run "
            "produced no output, so nothing is proven reproduced"
        )
    return f"{r.get('verdict')}: rerun on {where}, {day} (run {r['run_id']}) did not match"


def reproduce_command(record: dict[str, Any]) -> str:
    parts = ["reprise", "reproduce", record["run_id"]]
    repo_digest = record["image"].get("repo_digest")
    registry = record["image"].get("registry")
    if repo_digest and registry:
        parts += ["--registry", registry]
    return shlex.join(parts)


def card_context(
    record: dict[str, Any], *, metrics_text: str, config_text: str, plot: dict[str, Any] | None
) -> dict[str, Any]:
    records = parse_records(metrics_text)
    host = record.get("host") or {}
    gpu = host.get("gpu") or {}
    image = record["image"]
    runtime = record.get("runtime") or {}
    status = record["status"]
    status_line = f"Status: **{status}**" + (
        f" (exit code {record['exit_code']})" if record.get("exit_code") not in (None, 0) else ""
    )
    manifest = record.get("manifest") or {}
    return {
        "project": record.get("project"),
        "experiment": record["experiment"],
        "run_id": record["run_id"],
        "status_line": status_line,
        "reproductions": [
            {**r, "line": reproduction_line(r)} for r in record.get("reproductions") or []
        ],
        "reproduce_command": reproduce_command(record),
        "command": shlex.join(record["command"]),
        "seed": record["seed"],
        "seed_source": record.get("seed_source"),
        "threads": record.get("threads"),
        "started_at": record.get("started_at") or record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "duration": _duration(record.get("duration_s")),
        "config_hash": record["config"]["hash"],
        "overrides": record["config"].get("overrides") or [],
        "config_yaml": config_text,
        "data": [
            {"name": name, **info} for name, info in sorted((record.get("data") or {}).items())
        ],
        "metrics": summarize(records),
        "plot": plot,
        "image": {
            **dict.fromkeys(("base_digest", "base_image", "lock_hash", "tag", "repo_digest")),
            **image,
            "reference": image.get("repo_digest") or image.get("tag"),
        },
        "code": {
            **dict.fromkeys(("branch", "remote", "subdir", "patch_hash")),
            **record["code"],
        },
        "runtime": {"python": runtime.get("python"), "torch": runtime.get("torch")},
        "host": {
            "cpu": host.get("cpu"),
            "arch": host.get("arch"),
            "docker_version": host.get("docker_version"),
            "gpus": gpu.get("gpus") or [],
            "cuda": gpu.get("cuda"),
        },
        "outputs_count": manifest.get("files", 0),
        "manifest_algorithm": manifest.get("algorithm", "blake3"),
        "manifest_hash": manifest.get("hash"),
    }


def render_card(
    record: dict[str, Any],
    template: str,
    *,
    metrics_text: str,
    config_text: str,
    plot: dict[str, Any] | None,
) -> str:
    context = card_context(record, metrics_text=metrics_text, config_text=config_text, plot=plot)
    return render(template, context)
