"""The model card: a run's record rendered through a Jinja template. Pure: the caller reads the
run's files and writes the card (see ``commands.card``).

The packaged template is made of blocks (``front_matter``, ``intended_use``, ``limitations``,
``training``, ``evaluation``, ``how_to_load``, ...): a user's template ``{% extends
"model_card.md.j2" %}`` and overrides the blocks it wants, ``{{ super() }}`` keeping reprise's
text. The prose sections come from ``[tool.reprise.card]``; the front matter is Hugging Face's.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence
from typing import Any

from reprise.core.cardsettings import SECTIONS, CardSettings
from reprise.core.metrics import parse_records, summarize
from reprise.core.templating import render

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
MAX_CHECKPOINTS = 8
# The job named its files: only plain names go into the card's Markdown and Python snippet.
_PLAIN_PATH = re.compile(r"[\w.+@=-][\w .+@=/-]{0,255}")


def format_duration(seconds: float | None) -> str:
    """The one way a card writes a duration: ``42s``, ``5m 30s``, ``1h 02m 03s``."""
    if seconds is None:
        return "unknown duration"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def checkpoints(paths: Sequence[str]) -> list[str]:
    """The files a reader would load, from the manifest's paths: checkpoints/ first."""
    found = [
        p for p in paths if p.lower().endswith(CHECKPOINT_SUFFIXES) and _PLAIN_PATH.fullmatch(p)
    ]
    found.sort(key=lambda p: (not p.startswith("checkpoints/"), p))
    return found[:MAX_CHECKPOINTS]


def front_matter(card: CardSettings) -> str:
    """Hugging Face's model-card metadata, as YAML between ``---`` lines."""
    import yaml

    data: dict[str, Any] = {}
    if card.license:
        data["license"] = card.license
    if card.library_name:
        data["library_name"] = card.library_name
    data["tags"] = list(dict.fromkeys(["reprise", *card.tags]))
    if card.datasets:  # hub ids; the run's own datasets are in the Data section
        data["datasets"] = list(card.datasets)
    if card.metrics:  # ids of Hugging Face's metrics; the logged ones are in Evaluation
        data["metrics"] = list(card.metrics)
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n"


def sample_record() -> dict[str, Any]:
    """A run as small as a record can be: what a card template is checked against before
    training starts."""
    return {
        "run_id": "20000101-000000-00000000",
        "experiment": "sample",
        "project": "sample",
        "status": "succeeded",
        "exit_code": 0,
        "command": ["python", "train.py"],
        "seed": 0,
        "threads": 1,
        "duration_s": 1.0,
        "config": {"hash": "sha256:" + "0" * 64},
        "image": {"id": "sha256:" + "0" * 64},
        "code": {"commit": "0" * 40},
    }


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
    if r.get("verdict") == "inconclusive":
        return (
            f"rerun on {where}, {day} (run {r['run_id']}): inconclusive, a manifest is "
            "incomplete; what both list matched, the rest was never compared"
        )
    return f"{r.get('verdict')}: rerun on {where}, {day} (run {r['run_id']}) did not match"


_NOT_PLAIN = re.compile(r"[^A-Za-z0-9 _\-./@%+:=]")
MAX_NAME = 80


def plain_name(name: str) -> str:
    """A metric name as the card shows it: the job chose it, so no Markdown or HTML it could
    use (``|``, brackets, backticks, ``<``, newlines) reaches the card; bounded."""
    return _NOT_PLAIN.sub("_", name)[:MAX_NAME] or "_"


def reproduce_command(record: dict[str, Any]) -> str:
    parts = ["reprise", "reproduce", record["run_id"]]
    repo_digest = record["image"].get("repo_digest")
    registry = record["image"].get("registry")
    if repo_digest and registry:
        parts += ["--registry", registry]
    return shlex.join(parts)


def card_context(
    record: dict[str, Any],
    *,
    metrics_text: str,
    config_text: str,
    plot: dict[str, Any] | None,
    card: CardSettings | None = None,
    outputs: Sequence[str] = (),
    metrics_source: str | None = None,
    metrics_note: str | None = None,
) -> dict[str, Any]:
    card = card or CardSettings()
    records = parse_records(metrics_text)
    summaries = [dataclasses.replace(m, name=plain_name(m.name)) for m in summarize(records)]
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
        "status": status,
        "succeeded": status == "succeeded",
        "reason": record.get("reason"),
        "reproduces": record.get("reproduces"),
        "reproduce_command": reproduce_command(record),
        "command": shlex.join(record["command"]),
        "seed": record["seed"],
        "seed_source": record.get("seed_source"),
        "threads": record.get("threads"),
        "started_at": record.get("started_at") or record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "duration": format_duration(record.get("duration_s")),
        "config_hash": record["config"]["hash"],
        "overrides": record["config"].get("overrides") or [],
        "config_yaml": config_text,
        "data": [
            {"name": name, **info} for name, info in sorted((record.get("data") or {}).items())
        ],
        "metrics": summaries,
        "metrics_source": metrics_source,  # the paths in these are plain already
        "metrics_note": metrics_note,
        "plot": plot,
        "image": {
            **dict.fromkeys(("base_digest", "base_image", "lock_hash", "tag", "repo_digest")),
            **image,
            "reference": image.get("repo_digest") or image.get("tag"),
        },
        "code": {
            **dict.fromkeys(("branch", "remote", "subdir", "patch_hash", "dirty")),
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
        "front_matter": front_matter(card),
        "sections": {key.replace("-", "_"): card.section(key) for key in SECTIONS},
        "checkpoints": checkpoints(outputs),
    }


def render_card(
    record: dict[str, Any],
    template: str,
    *,
    metrics_text: str,
    config_text: str,
    plot: dict[str, Any] | None,
    card: CardSettings | None = None,
    outputs: Sequence[str] = (),
    metrics_source: str | None = None,
    metrics_note: str | None = None,
) -> str:
    context = card_context(
        record,
        metrics_text=metrics_text,
        config_text=config_text,
        plot=plot,
        card=card,
        outputs=outputs,
        metrics_source=metrics_source,
        metrics_note=metrics_note,
    )
    return render(template, context)
