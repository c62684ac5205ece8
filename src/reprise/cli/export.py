"""`reprise export`: a finished run into MLflow, TensorBoard or W&B offline files."""

from __future__ import annotations

from pathlib import Path

import click

from reprise.cli.common import RUNS_DIR_OPTION, emit_json, locate_run, maybe_project, say


@click.command("export")
@click.argument("run")
@click.argument("dest", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Choice(["mlflow", "tensorboard", "wandb"]),
    help="The tracker: mlflow (a tracking store), tensorboard or wandb (files in DEST).",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow's tracking store (default: MLFLOW_TRACKING_URI, else MLflow's own default).",
)
@click.option("--wandb-project", default=None, help="W&B project (default: the run's experiment).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written where, as JSON.")
@RUNS_DIR_OPTION
@click.pass_context
def export(
    ctx: click.Context,
    run: str,
    dest: Path | None,
    target: str,
    tracking_uri: str | None,
    wandb_project: str | None,
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """Export RUN, after it ran, to the trackers you already use: params (the frozen config),
    metrics at their steps, tags (image digest, commit, seed, verdict), and the model card and
    manifest as artifacts. Each tracker's library is an extra: pip install 'reprise[mlflow]'.

    \b
    Examples:
      reprise export 20261123-1412 --to mlflow --tracking-uri sqlite:///mlflow.db
      reprise export 20261123-1412 --to tensorboard tb/     # tensorboard --logdir tb/
      reprise export 20261123-1412 --to wandb wb/           # then: wandb sync wb/wandb/offline-run-*
    """
    from reprise.commands.export import export_run

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    result = export_run(
        run_dir,
        target,
        dest=dest,
        tracking_uri=tracking_uri,
        project=wandb_project,
        card=project.settings.card if project else None,
    )
    if as_json:
        emit_json(result)
        return
    for note in result["notes"]:
        say(f"note: {note}")
    points = sum(result["metrics"].values())
    summary = (
        f"{result['params']} params, {len(result['metrics'])} metrics ({points} points), "
        f"{len(result['tags'])} tags, artifacts {', '.join(result['artifacts']) or 'none'}"
    )
    if target == "mlflow":
        click.echo(
            f"exported {result['run_id']} to MLflow {result['tracking_uri']} as run "
            f"{result['mlflow_run_id']} (experiment {result['experiment_id']}): {summary}"
        )
    elif target == "tensorboard":
        click.echo(f"exported {result['run_id']} to {result['logdir']}: {summary}")
        click.echo(f"view it: tensorboard --logdir {dest}")
    else:
        click.echo(f"exported {result['run_id']} to {result['wandb_dir']}: {summary}")
        click.echo(f"upload it: {result['sync']}")
