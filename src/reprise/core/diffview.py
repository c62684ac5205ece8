"""`reprise diff` as a person reads it: what went in (config, seed, code, image,
environment), the metrics side by side, then what came out. Pure: the comparison's object in,
lines out. Every value from a run is shown through ``display.printable``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from reprise.core.display import number, printable

# The inputs in the order they are shown; command and host only when they differ.
INPUTS = ("config", "seed", "code", "image", "environment")
EXTRA_INPUTS = ("command", "host")
MAX_VALUE = 120
_TENSORS = re.compile(r": [0-9]+( of [0-9]+)? tensors? differs?\b")


def _value(value: Any) -> str:
    text = printable(repr(value))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _change(change: Mapping[str, Any]) -> str:
    return f"{printable(str(change['key']))}: {_value(change['a'])} -> {_value(change['b'])}"


def input_lines(inputs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    lines = ["inputs"]
    for name in INPUTS + EXTRA_INPUTS:
        changes = inputs.get(name) or []
        if not changes:
            if name in INPUTS:
                lines.append(f"  {name:<12} same")
            continue
        lines.append(f"  {name:<12} {_change(changes[0])}")
        lines += [f"  {'':<12} {_change(c)}" for c in changes[1:]]
    return lines


def metric_lines(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One row per metric: a's and b's final value, and best values where they are not the
    final ones; an arrow for which way is better."""
    if not metrics:
        return []
    rows: list[tuple[str, ...]] = [("metrics", "a", "b")]
    for name, sides in sorted(metrics.items()):
        goal = sides.get("goal")
        arrow = "↓" if goal == "min" else "↑" if goal == "max" else ""
        cells = []
        for side in ("a", "b"):
            found = sides.get(side) or {}
            cell = number(found.get("final"))
            if found.get("best") is not None and found.get("best") != found.get("final"):
                cell += f" (best {number(found.get('best'))})"
            cells.append(cell)
        rows.append((f"  {printable(name)} {arrow}".rstrip(), *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}".rstrip() for r in rows]


def output_lines(outputs: Mapping[str, Any], details: Sequence[str], verbose: bool) -> list[str]:
    if outputs.get("identical"):
        head = f"outputs  identical ({outputs.get('same', 0)} files)"
    elif outputs.get("nothing_compared"):
        head = "outputs  none to compare"
    elif outputs.get("outcome") == "inconclusive":
        head = (
            f"outputs  inconclusive: {outputs.get('same', 0)} files the same, "
            "but a manifest is incomplete"
        )
    else:
        differing = (
            len(outputs.get("changed") or [])
            + len(outputs.get("missing") or [])
            + len(outputs.get("extra") or [])
        )
        head = f"outputs  differ: {differing} of {differing + int(outputs.get('same') or 0)} files"
    lines = [head, *(f"  {printable(line)}" for line in details)]
    if not verbose and any(_TENSORS.search(d) for d in details):
        lines.append("  (-v lists every tensor)")
    return lines


def render(result: Mapping[str, Any], *, verbose: bool = False) -> list[str]:
    """The whole answer: who, inputs, metrics, outputs, notes."""
    lines = [f"a  {result['a']}", f"b  {result['b']}", ""]
    lines += input_lines(result["inputs"])
    metrics = metric_lines(result.get("metrics") or {})
    if metrics:
        lines += ["", *metrics]
    lines += ["", *output_lines(result["outputs"], result["details"], verbose)]
    lines += [f"note: {printable(n)}" for n in result.get("notes") or []]
    return lines
