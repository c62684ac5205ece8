"""`reprise card`: render a run's model card (and its training curves) into files."""

from __future__ import annotations

from pathlib import Path

from reprise.core import keys
from reprise.core.card import render_card
from reprise.core.metrics import parse_records, series
from reprise.core.plot import plot_series
from reprise.core.templating import template_text
from reprise.edges.runfiles import read_regular, read_text_or_none
from reprise.edges.runstore import atomic_write, read_record

METRICS_LIMIT = 64 << 20
CONFIG_LIMIT = 16 << 20


def metrics_text(run_dir: Path) -> str:
    """The job's metrics (logs/metrics.jsonl, else a metrics.jsonl anywhere in what it
    wrote): its complete lines within the first METRICS_LIMIT bytes; empty when absent or not
    a regular file (the job may have planted anything there)."""
    from reprise.commands.metricsfile import metrics_file

    try:
        found = read_regular(run_dir, metrics_file(run_dir), METRICS_LIMIT)
    except OSError:
        return ""
    if found is None:
        return ""
    data, truncated = found
    if truncated:
        data = data[: data.rfind(b"\n") + 1]
    return data.decode("utf-8", "replace")


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
    metrics = metrics_text(run_dir)
    curves = series(parse_records(metrics))
    plot = None
    if curves:
        png, legend = plot_series(curves)
        atomic_write(out.parent / keys.RUN_PLOT, png, durable=False)
        plot = {"file": keys.RUN_PLOT, "legend": legend}
    config = read_text_or_none(run_dir, keys.RUN_CONFIG, CONFIG_LIMIT) or ""
    text = render_card(record, template, metrics_text=metrics, config_text=config, plot=plot)
    atomic_write(out, text, durable=False)
    return out
