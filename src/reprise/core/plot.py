"""The training-curve figure of a model card: one panel per metric family, drawn with
matplotlib (Agg, imported only here, only when a card is rendered). Pure: series in, PNG bytes
out, and the same bytes for the same series on any machine with the same matplotlib.

A family is a metric's name without its split prefix or suffix (``train_loss`` and
``val/loss`` are both ``loss``), so the curves that share a unit share an axis. The job wrote
the metrics, so the figure is bounded: at most MAX_PANELS panels of MAX_CURVES curves, each
thinned to MAX_POINTS points.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprise.core.metrics import goal_of

Series = Sequence[tuple[float, float]]

MAX_PANELS = 8
MAX_CURVES = 8
MAX_POINTS = 2000
MAX_LABEL = 40
DPI = 100
PANEL_SIZE = (5.0, 3.4)  # inches: 500x340 pixels at DPI
# Words that say which split a metric was measured on, not what it measures.
_SPLITS = frozenset({"train", "training", "val", "valid", "validation", "eval", "test", "dev"})
_WORDS = re.compile(r"[/._\-\s]+")
_SCHEDULES = frozenset({"lr", "learning_rate", "momentum", "weight_decay", "wd"})
# One decade and a half of positive values: a log axis shows the shape, a linear one a wall.
LOG_RATIO = 30.0


@dataclass(frozen=True)
class Panel:
    family: str
    names: tuple[str, ...]
    log: bool
    box: tuple[int, int, int, int]  # left, top, right, bottom of its axes, in pixels


@dataclass(frozen=True)
class Figure:
    png: bytes
    width: int
    height: int
    panels: tuple[Panel, ...]
    omitted: tuple[str, ...]  # metrics left out of the figure (past the bounds)


def family(name: str) -> str:
    """``train_loss`` -> ``loss``, ``val/acc`` -> ``acc``, ``lr`` -> ``lr``."""
    words = [w for w in _WORDS.split(name.lower()) if w]
    kept = [w for w in words if w not in _SPLITS]
    return "_".join(kept or words) or name


def _thin(points: Series) -> list[tuple[float, float]]:
    finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(finite) <= MAX_POINTS:
        return finite
    step = len(finite) / MAX_POINTS
    picked = [finite[int(i * step)] for i in range(MAX_POINTS - 1)]
    return [*picked, finite[-1]]


def wants_log(curves: Sequence[Series]) -> bool:
    values = [y for points in curves for _, y in points]
    if not values or min(values) <= 0:
        return False
    return max(values) / min(values) >= LOG_RATIO


def group(series: Mapping[str, Series]) -> tuple[dict[str, list[str]], list[str]]:
    """family -> metric names (in name order), and the names left out past the bounds."""
    families: dict[str, list[str]] = {}
    omitted: list[str] = []
    for name in sorted(series):
        if not _thin(series[name]):
            continue
        key = family(name)
        if key not in families and len(families) >= MAX_PANELS:
            omitted.append(name)
            continue
        names = families.setdefault(key, [])
        if len(names) >= MAX_CURVES:
            omitted.append(name)
            continue
        names.append(name)
    order = sorted(families, key=_panel_order)
    return {key: families[key] for key in order}, omitted


def _panel_order(key: str) -> tuple[int, str]:
    """Losses first, then the other measures, then the optimizer's schedules."""
    if key in _SCHEDULES:
        return 2, key
    return (0 if goal_of(key) == "min" else 1), key


def title(key: str) -> str:
    if key in _SCHEDULES:
        return f"{key} (schedule)"
    return f"{key} ({'lower' if goal_of(key) == 'min' else 'higher'} is better)"


def plot_series(series: Mapping[str, Series], *, x_label: str = "step") -> Figure | None:
    """The figure of these curves (name -> [(step, value)]), or None when none has a point."""
    families, omitted = group(series)
    if not families:
        return None
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    count = len(families)
    cols = 1 if count == 1 else 2
    rows = math.ceil(count / cols)
    style: dict[str, Any] = {
        "svg.hashsalt": "reprise",
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "lines.linewidth": 1.5,
        "path.simplify": False,
        "text.usetex": False,
    }
    with rc_context(style):  # type: ignore[arg-type]
        fig = MplFigure(
            figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), dpi=DPI, layout="constrained"
        )
        canvas = FigureCanvasAgg(fig)
        axes_list = fig.subplots(rows, cols, squeeze=False).flatten()
        logs: list[bool] = []
        for ax, (key, names) in zip(axes_list, families.items(), strict=False):
            curves = [_thin(series[name]) for name in names]
            log = wants_log(curves)
            logs.append(log)
            for name, points in zip(names, curves, strict=True):
                xs = [x for x, _ in points]
                ys = [y for _, y in points]
                marker = "o" if len(points) <= 30 else None
                ax.plot(xs, ys, label=_label(name), marker=marker, markersize=3)
            if log:
                ax.set_yscale("log")
            ax.set_title(_label(title(key)), loc="left", fontweight="bold")
            ax.set_xlabel(_label(x_label))
            ax.set_ylabel(_label(f"{key} (log scale)" if log else key))
            ax.legend(loc="best", frameon=False)
        for ax in axes_list[count:]:
            ax.set_visible(False)
        canvas.draw()  # type: ignore[no-untyped-call]
        width, height = (int(v) for v in canvas.get_width_height())
        panels = tuple(
            Panel(key, tuple(names), log, _box(ax.get_window_extent(), height))
            for ax, (key, names), log in zip(axes_list, families.items(), logs, strict=False)
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return Figure(buffer.getvalue(), width, height, panels, tuple(omitted))


def _label(text: str) -> str:
    """The job named its metrics: bounded, plain text (a ``$`` escaped, so never mathtext to
    parse), and never one of matplotlib's hidden ``_`` labels."""
    text = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    text = text.replace("$", "\\$")
    return f" {text}" if text.startswith("_") else text


def _box(extent: object, height: int) -> tuple[int, int, int, int]:
    """Matplotlib's display box (origin bottom-left) as pixel rows and columns."""
    x0, y0, x1, y1 = extent.x0, extent.y0, extent.x1, extent.y1  # type: ignore[attr-defined]
    return (math.floor(x0), height - math.ceil(y1), math.ceil(x1), height - math.floor(y0))
