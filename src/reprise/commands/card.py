"""`reprise card`: render a run's model card (and its training curves) into files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.card import plain_name, render_card, sample_record
from reprise.core.cardsettings import CardSettings
from reprise.core.errors import CardTemplateError, RepriseError
from reprise.core.metrics import parse_records, series, step_name
from reprise.core.templating import error_line, template_text
from reprise.edges.runfiles import read_text_or_none
from reprise.edges.runstore import atomic_write, read_record

CONFIG_LIMIT = 16 << 20
TEMPLATE_LIMIT = 1 << 20


def metrics_text(run_dir: Path) -> str:
    """The job's metrics as JSON lines (see ``metricsfile.run_metrics``); empty when none."""
    from reprise.commands.metricsfile import run_metrics

    return run_metrics(run_dir).text


def load_template(path: Path | None) -> str:
    """The card template's text: the user's file, else reprise's own."""
    if path is None:
        return template_text("model_card.md.j2")
    try:
        with path.open("rb") as handle:
            data = handle.read(TEMPLATE_LIMIT + 1)
    except OSError as exc:
        raise CardTemplateError(
            f"card template {path} cannot be read: {exc.strerror or exc}", path=str(path), line=None
        ) from None
    if len(data) > TEMPLATE_LIMIT:
        raise CardTemplateError(
            f"card template {path} is over {TEMPLATE_LIMIT} bytes", path=str(path), line=None
        )
    return data.decode("utf-8", "replace")


def _template_error(path: Path | None, exc: Exception) -> CardTemplateError:
    name, line = error_line(exc)
    where = str(path or "model_card.md.j2") if not name else f"{name} (extended by {path})"
    at = f"{where}, line {line}" if line else where
    message = getattr(exc, "message", None) or str(exc)
    return CardTemplateError(
        f"card template {at}: {message}",
        path=str(path or ""),
        line=line,
        hint='extend reprise\'s card with {% extends "model_card.md.j2" %} and override its '
        "blocks; every variable it uses is listed at the top of templates/model_card.md.j2",
    )


def render_checked(path: Path | None, template: str, record: dict[str, Any], **context: Any) -> str:
    import jinja2

    try:
        return render_card(record, template, **context)
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise _template_error(path, exc) from None


def check_template(card: CardSettings | None) -> None:
    """Compile and render the card's template against a sample run, before any training:
    CardTemplateError (exit 2) names its line."""
    path = card.template if card else None
    if path is None:
        return
    render_checked(
        path, load_template(path), sample_record(), metrics_text="", config_text="", plot=None
    )


def _outputs(run_dir: Path) -> list[str]:
    from reprise.commands.verdict import load_manifest

    try:
        return [e.path for e in load_manifest(run_dir).files if e.kind == "file"]
    except RepriseError:
        return []


def _plot(out_dir: Path, metrics: str) -> dict[str, Any] | None:
    from reprise.core.plot import plot_series

    records = parse_records(metrics)
    try:
        figure = plot_series(series(records), x_label=step_name(records))
    except (ValueError, OverflowError, RuntimeError):
        figure = None  # values matplotlib cannot draw: the card keeps its table, not the figure
    if figure is None:
        return None
    atomic_write(out_dir / keys.RUN_PLOT, figure.png, durable=False)
    panels = [
        f"{plain_name(p.family)} ({', '.join(plain_name(n) for n in p.names)})"
        for p in figure.panels
    ]
    return {
        "file": keys.RUN_PLOT,
        "alt": "Training curves: " + "; ".join(panels),
        "panels": panels,
        "omitted": [plain_name(n) for n in figure.omitted],
    }


def write_card(
    run_dir: Path,
    *,
    card: CardSettings | None = None,
    template_path: Path | None = None,
    output: Path | None = None,
) -> Path:
    """Render the card (and its curves PNG, when there are metrics) beside it.
    ``template_path`` wins over ``card.template``."""
    record = read_record(run_dir)
    path = template_path or (card.template if card else None)
    template = load_template(path)
    out = output or run_dir / keys.RUN_CARD
    from reprise.commands.metricsfile import run_metrics

    metrics = run_metrics(run_dir)
    config = read_text_or_none(run_dir, keys.RUN_CONFIG, CONFIG_LIMIT) or ""
    text = render_checked(
        path,
        template,
        record,
        metrics_text=metrics.text,
        config_text=config,
        plot=_plot(out.parent, metrics.text),
        card=card,
        outputs=_outputs(run_dir),
        metrics_source=metrics.source,
        metrics_note=metrics.note,
    )
    atomic_write(out, text, durable=False)
    return out
