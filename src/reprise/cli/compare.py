"""`reprise compare`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import click

from reprise.cli.common import (
    RUNS_DIR_OPTION,
    complete_runs,
    emit_json,
    locate_run,
    maybe_project,
    runs_dir_of,
    say,
)

# The table shows at most this many config keys; --json and --csv show every one.
MAX_CONFIG_COLUMNS = 24


@click.command()
@click.argument("runs", nargs=-1, shell_complete=complete_runs)
@click.option("--experiment", "-e", default=None, help="Every run of this experiment.")
@click.option(
    "--sweep",
    default=None,
    metavar="SWEEP",
    help="Every run of this sweep (its id, the id's last 8 hex digits, or latest).",
)
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=None, help="The newest N runs only."
)
@click.option(
    "--only-changed",
    is_flag=True,
    help="Leave out every column that is the same in all runs (metrics, status, verdict).",
)
@click.option("--sort", metavar="METRIC", default=None, help="Best first by METRIC's best value.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the comparison as CSV.")
@RUNS_DIR_OPTION
@click.pass_context
def compare(
    ctx: click.Context,
    runs: tuple[str, ...],
    experiment: str | None,
    sweep: str | None,
    limit: int | None,
    only_changed: bool,
    sort: str | None,
    as_json: bool,
    as_csv: bool,
    runs_dir: str | None,
) -> None:
    """Compare runs side by side: one row per run with the config keys that differ between
    them, each metric's final and best value, status and verdict.

    RUNS are run ids, names, latest~N...; without them, every run of --sweep (in the
    sweep's order), else of --experiment (default: the project's experiment), newest first. Lower is better for the metrics declared
    "min" in [tool.reprise] metrics (and, undeclared, those named like a loss or an error);
    learning rates logged beside the metrics are not compared as metrics.

    \b
    Examples:
      reprise compare
      reprise compare baseline latest --only-changed
      reprise compare -e spiral --sort val_loss --csv > runs.csv
      reprise compare --sweep latest --sort val_loss
    """
    from reprise.commands.compare import compare as compare_runs
    from reprise.commands.compare import csv_rows
    from reprise.core.errors import UsageError

    if as_json and as_csv:
        raise UsageError("--json and --csv both ask for the output: give one")
    if sum(map(bool, (runs, experiment, sweep))) > 1:
        raise UsageError(
            "give RUNS, --experiment or --sweep: one of them",
            hint="reprise compare RUN_A RUN_B, or reprise compare --sweep latest",
        )
    project = maybe_project(ctx)
    if runs:
        run_dirs = [locate_run(ctx, runs_dir, ref) for ref in runs][:limit]
    elif sweep:
        run_dirs = _sweep_runs(ctx, runs_dir, sweep, limit)
    else:
        run_dirs = _experiment_runs(ctx, runs_dir, experiment, limit, project)
    result = compare_runs(
        run_dirs,
        directions=project.settings.metrics if project else None,
        only_changed=only_changed,
        sort=sort,
    )
    for note in result["notes"]:
        say(f"note: {note}")
    if as_json:
        emit_json(result)
    elif as_csv:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(csv_rows(result))
        click.echo(out.getvalue(), nl=False)
    else:
        print_comparison(result, only_changed)


def _sweep_runs(
    ctx: click.Context, runs_dir: str | None, sweep: str, limit: int | None
) -> list[Path]:
    from reprise.commands.show import list_runs

    found = list_runs(
        runs_dir_of(ctx, runs_dir), experiment=None, status=None, limit=None, say=say, sweep=sweep
    )
    found.sort(key=lambda s: int(s.get("sweep_index") or 0))
    return [Path(s["path"]) for s in found][:limit]


def _experiment_runs(
    ctx: click.Context,
    runs_dir: str | None,
    experiment: str | None,
    limit: int | None,
    project: Any,
) -> list[Path]:
    from reprise.commands.show import list_runs

    where = runs_dir_of(ctx, runs_dir)
    if experiment is None and project is not None and not runs_dir:
        experiment = project.settings.experiment
    found = list_runs(where, experiment=experiment, status=None, limit=limit, say=say)
    if not found:
        from reprise.core.errors import UsageError

        raise UsageError(
            f"no runs{f' of experiment {experiment}' if experiment else ''} under {where}",
            hint="`reprise ls` lists the runs",
        )
    return [Path(s["path"]) for s in found]


def print_comparison(result: dict[str, Any], only_changed: bool) -> None:
    from reprise.cli.tables import STATUS_STYLES, VERDICT_STYLES, Column, origin, print_table
    from reprise.commands.compare import value_text
    from reprise.core.display import number

    runs = result["runs"]
    config_keys = result["config_keys"][:MAX_CONFIG_COLUMNS]
    missing = object()
    table: list[tuple[Column, list[str]]] = [
        (Column("RUN", keep=True), [r["run_id"] for r in runs]),
        (Column("NAME", 20), [r["name"] or "" for r in runs]),
        (Column("STATUS", keep=True, styles=STATUS_STYLES), [r["status"] for r in runs]),
        (Column("VERDICT", 16, styles=VERDICT_STYLES), [r["verdict"] or "-" for r in runs]),
        (Column("ORIGIN", 18), [origin(r) for r in runs]),
    ]
    if result["seed_differs"]:
        table.append((Column("seed", keep=True, right=True), [str(r["seed"]) for r in runs]))
    for key in config_keys:
        values = [r["config"].get(key, missing) for r in runs]
        table.append((Column(key, 24), ["-" if v is missing else value_text(v) for v in values]))
    for metric, goal in result["metrics"].items():
        found = [r["metrics"].get(metric) or {} for r in runs]
        best = f"{metric} best{'↓' if goal == 'min' else '↑'}"
        table.append((Column(metric, 16, right=True), [number(f.get("final")) for f in found]))
        table.append((Column(best, 16, right=True), [number(f.get("best")) for f in found]))
    shown = [
        (column, cells)
        for column, cells in table
        if not (column.header in ("NAME", "ORIGIN") and not any(cells))
        and not (only_changed and column.header in ("STATUS", "VERDICT") and len(set(cells)) == 1)
    ]
    print_table(
        [c for c, _ in shown], [list(row) for row in zip(*(c for _, c in shown), strict=True)]
    )
    left = len(result["config_keys"]) - len(config_keys)
    if left:
        say(f"{left} more config keys differ: --json or --csv shows every one")
    if not result["config_keys"] and len(runs) > 1:
        say("the runs' configs are the same")
