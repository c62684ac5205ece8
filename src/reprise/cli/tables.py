"""Tables on stdout: drawn with rich on a terminal (colour unless NO_COLOR is set), plain
aligned text when piped. Either way a cell that is cut ends with an ellipsis, never silently,
and every value from a record is made printable first (a record is hostile input: no control
character, no markup reaches the terminal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from reprise.core.display import clip, printable, shell_command

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "interrupted": "yellow",
    "lost": "magenta",
}
VERDICT_STYLES = {
    "identical": "green",
    "diverged": "red",
    "inconclusive": "yellow",
    "nothing-compared": "yellow",
    "error": "red",
}


@dataclass(frozen=True)
class Column:
    """``width``: the most characters a cell shows (None: all, as the last column's);
    ``keep``: never cut (a run id is an address)."""

    header: str
    width: int | None = 24
    keep: bool = False
    right: bool = False
    styles: Mapping[str, str] | None = None
    drop: int = 0  # on a terminal too narrow for every column, higher ones go first (0: never)


def on_terminal() -> bool:
    return sys.stdout.isatty()


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """The rows under the columns' headers: rich on a terminal, plain text otherwise."""
    cells = [[printable(cell) for cell in row] for row in rows]
    if on_terminal():
        _rich_table(columns, cells)
    else:
        for line in plain_table(columns, cells):
            click.echo(line)


def natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column as wide as its widest cell, within its ``width``."""
    widths = []
    for i, column in enumerate(columns):
        longest = max([len(column.header), *(len(row[i]) for row in rows)])
        limit = column.width
        widths.append(longest if column.keep or limit is None else min(longest, limit))
    return widths


def fit_widths(widths: Sequence[int], columns: Sequence[Column], room: int) -> list[int]:
    """``widths`` narrowed to fit ``room`` characters: the last column first (down to 20),
    then the others that may be cut, widest first (down to 5); columns marked ``keep``
    never. The sum may stay over ``room``: see :func:`fit_columns`."""
    out = list(widths)
    last = len(out) - 1
    floor = {i: min(out[i], 20 if i == last else 5) for i, c in enumerate(columns) if not c.keep}
    while sum(out) > room:
        cuttable = [i for i in floor if out[i] > floor[i]]
        if not cuttable:
            break
        widest = last if last in cuttable else max(cuttable, key=lambda i: out[i])
        out[widest] -= 1
    return out


GAP = 2  # characters between two columns


def fit_columns(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> tuple[list[int], list[int]]:
    """(the indexes of the columns shown, their widths) for a terminal ``width`` wide:
    every column, narrowed; on a terminal too narrow for that, columns left out by their
    ``drop`` (the caller says which)."""
    shown = list(range(len(columns)))
    natural = natural_widths(columns, rows)
    while True:
        room = width - GAP * (len(shown) - 1)
        widths = fit_widths([natural[i] for i in shown], [columns[i] for i in shown], room)
        droppable = [i for i in shown if columns[i].drop]
        if sum(widths) <= room or not droppable:
            return shown, widths
        shown.remove(max(droppable, key=lambda i: columns[i].drop))


def plain_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = natural_widths(columns, rows)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, (column, cell) in enumerate(zip(columns, cells, strict=True)):
            text = cell if column.keep or column.width is None else clip(cell, widths[i])
            if column.right:
                parts.append(text.rjust(widths[i]))
            else:
                parts.append(text if i == len(columns) - 1 else text.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return [line([c.header for c in columns]), *(line(row) for row in rows)]


def _rich_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Only reached on a terminal. NO_COLOR (https://no-color.org): no colour, no emphasis.
    plain = bool(os.environ.get("NO_COLOR"))
    console = Console(
        file=sys.stdout,
        highlight=False,
        force_terminal=True,
        color_system=None if plain else "auto",
    )
    shown, widths = fit_columns(columns, rows, console.width)
    left_out = [c.header for i, c in enumerate(columns) if i not in shown]
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        show_edge=False,
        padding=(0, GAP - 1, 0, 0),
    )
    for i, width in zip(shown, widths, strict=True):
        column = columns[i]
        table.add_column(
            clip(column.header, width),
            justify="right" if column.right else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=width,
        )
    for row in rows:
        table.add_row(
            *(
                # Text, not a string: nothing in a record is read as markup.
                Text(clip(row[i], width), style=(columns[i].styles or {}).get(row[i], ""))
                for i, width in zip(shown, widths, strict=True)
            )
        )
    console.print(table)
    if left_out:
        click.echo(
            f"reprise: {', '.join(left_out)} left out: the terminal is too narrow "
            "(--json has every value)",
            err=True,
        )


# --- runs ----------------------------------------------------------------------------------
def _short(run_id: object) -> str:
    return str(run_id)[-8:]


def origin(summary: Mapping[str, Any]) -> str:
    """A rerun (`reproduce`) or a resumed run (`resume`) says which run it came from, by the
    random suffix that addresses it; a sweep's run, its sweep and place in it."""
    if summary.get("reproduces"):
        return f"rerun of {_short(summary['reproduces'])}"
    if summary.get("resumes"):
        return f"resumes {_short(summary['resumes'])}"
    if summary.get("sweep"):  # by the suffix `ls --sweep` takes, and the run's place in it
        return f"sweep {str(summary['sweep'])[-8:]} #{int(summary.get('sweep_index') or 0) + 1}"
    return ""


def verdict_of(summary: Mapping[str, Any]) -> str:
    """The last reproduction's verdict of a run; a rerun's own."""
    value = summary.get("last_verdict") or summary.get("verdict")
    return str(value) if value else ""


RUN_COLUMNS = (
    Column("RUN", keep=True),
    Column("NAME", 20, drop=3),
    Column("EXPERIMENT", 16, drop=4),
    Column("STATUS", keep=True, styles=STATUS_STYLES),
    Column("SEED", keep=True, right=True, drop=5),
    Column("VERDICT", 16, styles=VERDICT_STYLES),
    Column("ORIGIN", 18, drop=2),
    Column("TAGS", 24, drop=6),
    Column("NOTE", 32, drop=7),
    Column("COMMAND", None, drop=1),
)
_OPTIONAL = {"NAME", "ORIGIN", "TAGS", "NOTE"}


def print_runs(summaries: Sequence[Mapping[str, Any]]) -> None:
    """`reprise ls`: one line per run; columns no run has a value in are left out."""
    rows = [
        [
            str(s.get("run_id")),
            str(s.get("name") or ""),
            str(s.get("experiment")),
            str(s.get("status")),
            str(s.get("seed")),
            verdict_of(s) or "-",
            origin(s),
            " ".join(str(t) for t in s.get("tags") or []),
            str(s.get("note") or ""),
            shell_command([str(a) for a in s.get("command") or []]),
        ]
        for s in summaries
    ]
    keep = [
        i
        for i, column in enumerate(RUN_COLUMNS)
        if column.header not in _OPTIONAL or any(row[i] for row in rows)
    ]
    print_table([RUN_COLUMNS[i] for i in keep], [[row[i] for i in keep] for row in rows])
