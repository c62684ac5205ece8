"""`reprise export`: a finished run, from its record, into the trackers people already run
(MLflow, TensorBoard, W&B offline files). Runs train without network, so this happens after
the run; everything is read from the run directory through the bounded, no-follow helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.commands.card import CONFIG_LIMIT, metrics_text, write_card
from reprise.core import keys
from reprise.core.cardsettings import CardSettings
from reprise.core.config import load_untrusted_config_text
from reprise.core.errors import ConfigError, UsageError
from reprise.core.metrics import parse_records
from reprise.core.tracking import TARGETS, Export, build_export
from reprise.edges.runfiles import read_regular, read_text_or_none
from reprise.edges.runstore import read_record

ARTIFACT_LIMIT = 64 << 20
# What goes along as artifacts: the card (and its figure), the manifest, the frozen config.
ARTIFACTS = (keys.RUN_CARD, keys.RUN_PLOT, keys.RUN_MANIFEST, keys.RUN_CONFIG)


def _artifacts(run_dir: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in ARTIFACTS:
        try:
            found = read_regular(run_dir, name, ARTIFACT_LIMIT)
        except OSError:
            continue
        if found is not None and not found[1]:
            out[name] = found[0]
    return out


def _without_front_matter(card: str) -> str:
    """The card as a description: its Hugging Face metadata block is for the Hub, not a UI."""
    if card.startswith("---\n") and "\n---\n" in card[3:]:
        return card[card.index("\n---\n", 3) + 5 :].lstrip("\n")
    return card


def plan(run_dir: Path) -> Export:
    """The export of the run in ``run_dir``: no tracker library needed."""
    record = read_record(run_dir)
    text = read_text_or_none(run_dir, keys.RUN_CONFIG, CONFIG_LIMIT) or ""
    try:
        config = load_untrusted_config_text(text, source=str(run_dir / keys.RUN_CONFIG))
    except ConfigError:
        config = {}  # a Hydra run's placeholder, or no config: its overrides are still params
    return build_export(record, config=config, records=parse_records(metrics_text(run_dir)))


def export_run(
    run_dir: Path,
    target: str,
    *,
    dest: Path | None = None,
    tracking_uri: str | None = None,
    project: str | None = None,
    card: CardSettings | None = None,
) -> dict[str, Any]:
    """Export the run to ``target`` (one of TARGETS); the card is rendered first when the run
    has none. Returns what was written where, for the CLI and --json."""
    if target not in TARGETS:
        raise UsageError(f"unknown export target {target!r}", hint=f"one of {', '.join(TARGETS)}")
    if target == "mlflow" and dest is not None:
        raise UsageError(
            "MLflow takes a tracking URI, not a folder",
            hint=f"reprise export RUN --to mlflow --tracking-uri sqlite:///{dest}/mlflow.db",
        )
    if target != "mlflow" and dest is None:
        raise UsageError(
            f"--to {target} writes files: name the folder",
            hint=f"reprise export RUN --to {target} DIR",
        )
    export = plan(run_dir)
    if export.status == "running":
        raise UsageError(
            f"run {export.run_id} is still running: its metrics and outputs are not final",
            hint=f"reprise wait {export.run_id}, then export it",
        )
    if not (run_dir / keys.RUN_CARD).exists():
        write_card(run_dir, card=card)
    artifacts = _artifacts(run_dir)
    from reprise.edges import trackers

    if target == "mlflow":
        note = _without_front_matter(artifacts.get(keys.RUN_CARD, b"").decode("utf-8", "replace"))
        where = trackers.to_mlflow(export, artifacts, tracking_uri=tracking_uri, note=note)
    elif target == "tensorboard":
        assert dest is not None
        texts = {
            "reprise/model_card": artifacts.get(keys.RUN_CARD, b"").decode("utf-8", "replace"),
            "reprise/config": artifacts.get(keys.RUN_CONFIG, b"").decode("utf-8", "replace"),
        }
        where = trackers.to_tensorboard(export, {k: v for k, v in texts.items() if v}, dest)
    else:
        assert dest is not None
        where = trackers.to_wandb(export, artifacts, dest, project=project)
    return {
        "run_id": export.run_id,
        "to": target,
        "params": len(export.params),
        "metrics": {name: len(points) for name, points in export.metrics.items()},
        "tags": export.tags,
        "artifacts": sorted(artifacts),
        "notes": export.notes,
        **where,
    }
