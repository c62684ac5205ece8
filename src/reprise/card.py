"""The model card: a run's record rendered through a Jinja template, plus its training curves."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from reprise import keys
from reprise.metrics import parse_records, series, summarize
from reprise.plot import plot_series
from reprise.runstore import atomic_write, read_record
from reprise.templating import render, template_text


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
    return f"{r.get('verdict')}: rerun on {where}, {day} (run {r['run_id']}) did not match"


def reproduce_command(record: dict[str, Any]) -> str:
    parts = ["reprise", "reproduce", record["run_id"]]
    repo_digest = record["image"].get("repo_digest")
    registry = record["image"].get("registry")
    if repo_digest and registry:
        parts += ["--registry", registry]
    return shlex.join(parts)


def card_context(
    record: dict[str, Any], run_dir: Path, plot: dict[str, Any] | None
) -> dict[str, Any]:
    records = parse_records(_read(run_dir / keys.RUN_METRICS))
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
        "code": record["code"],
        "started_at": record.get("started_at") or record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "duration": _duration(record.get("duration_s")),
        "config_hash": record["config"]["hash"],
        "overrides": record["config"].get("overrides") or [],
        "config_yaml": _read(run_dir / keys.RUN_CONFIG),
        "data": [
            {"name": name, **info} for name, info in sorted((record.get("data") or {}).items())
        ],
        "metrics": summarize(records),
        "plot": plot,
        "image": {
            **image,
            "reference": image.get("repo_digest") or image.get("tag"),
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def render_card(
    record: dict[str, Any], run_dir: Path, template: str, plot: dict[str, Any] | None
) -> str:
    return render(template, card_context(record, run_dir, plot))


def write_card(
    run_dir: Path, *, template_path: Path | None = None, output: Path | None = None
) -> Path:
    """Render the card (and its curves PNG, when there are metrics) beside it."""
    record = read_record(run_dir)
    template = (
        template_path.read_text(encoding="utf-8")
        if template_path
        else template_text("model_card.md.j2")
    )
    out = output or run_dir / keys.RUN_CARD
    curves = series(parse_records(_read(run_dir / keys.RUN_METRICS)))
    plot = None
    if curves:
        png, legend = plot_series(curves)
        png_path = out.parent / keys.RUN_PLOT
        atomic_write(png_path, png, durable=False)
        plot = {"file": keys.RUN_PLOT, "legend": legend}
    atomic_write(out, render_card(record, run_dir, template, plot), durable=False)
    return out
