"""`reprise ls`, `reprise show`, `reprise card`, `reprise gc`."""

from __future__ import annotations

from pathlib import Path

import click

from reprise.cli.common import (
    RUNS_DIR_OPTION,
    complete_runs,
    emit_json,
    locate_run,
    maybe_project,
    project_of,
    runs_dir_of,
    say,
)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the card here (default: model_card.md in the run directory).",
)
@click.option(
    "--template",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help='A Jinja template, best one that {% extends "model_card.md.j2" %} (default: '
    "[tool.reprise.card] template, else reprise's own).",
)
@RUNS_DIR_OPTION
@click.pass_context
def card(
    ctx: click.Context, run: str, output: str | None, template: str | None, runs_dir: str | None
) -> None:
    """Render RUN's model card (Markdown, with a PNG of its training curves beside it).

    \b
    Examples:
      reprise card 20261123-1412
      reprise card 20261123-1412 -o docs/MODEL_CARD.md --template my_card.md.j2
    """
    from reprise.commands.card import write_card

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    path = write_card(
        run_dir,
        card=project.settings.card if project else None,
        template_path=Path(template) if template else None,
        output=Path(output) if output else None,
    )
    click.echo(str(path))


@click.command("ls")
@click.option("--experiment", "-e", default=None, help="Only this experiment.")
@click.option(
    "--status",
    "-s",
    default=None,
    type=click.Choice(["running", "succeeded", "failed", "interrupted", "lost"]),
    help="Only runs with this status.",
)
@click.option("--tag", "-t", default=None, help="Only runs with this tag.")
@click.option(
    "--sweep",
    default=None,
    metavar="SWEEP",
    help="Only the runs of this sweep (its id, the id's last 8 hex digits, or latest).",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of run summaries.")
@RUNS_DIR_OPTION
@click.pass_context
def ls_(
    ctx: click.Context,
    experiment: str | None,
    status: str | None,
    tag: str | None,
    sweep: str | None,
    limit: int | None,
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """List runs, newest first: name, status, seed, last verdict, whether a run reruns or
    resumes another, tags, last note, command (quoted as a shell would).

    On a terminal a table that fits it (colour unless NO_COLOR is set); piped, plain
    columns. A value that is cut ends with an ellipsis; --json has every value whole.

    \b
    Examples:
      reprise ls
      reprise ls -e spiral -s failed
      reprise ls --tag baseline
      reprise ls --sweep latest
      reprise ls --json | jq '.[0].run_id'
    """
    from reprise.cli.tables import print_runs
    from reprise.commands.show import list_runs

    runs = list_runs(
        runs_dir_of(ctx, runs_dir),
        experiment=experiment,
        status=status,
        tag=tag,
        sweep=sweep,
        limit=limit,
        say=say,
    )
    if as_json:
        emit_json(runs, compact=True)
        return
    if not runs:
        say("no runs")
        return
    print_runs(runs)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option("--json", "as_json", is_flag=True, help="Print the whole run.json.")
@RUNS_DIR_OPTION
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Summarize one run: status, times, image, commit, seed, metrics, verdicts.

    \b
    Examples:
      reprise show 20261123-1412
      reprise show 20261123-1412 --json | jq .image
    """
    from reprise.commands.show import describe_run, show_record

    run_dir = locate_run(ctx, runs_dir, run)
    record = show_record(run_dir, say=say)
    if as_json:
        emit_json(record)
        return
    from reprise.cli.style import word

    project = maybe_project(ctx)
    for line in describe_run(record, run_dir, project.settings.metrics if project else None):
        if line.startswith("status     "):  # the status word coloured on a terminal
            head, status = line[:11], line[11:]
            word_end = len(status.split(" ", 1)[0].split(":", 1)[0])
            line = head + word(status[:word_end]) + status[word_end:]
        click.echo(line)


@click.command()
@click.option("--yes", is_flag=True, help="Remove them (without it, only list what would go).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print what was (or would be) removed as JSON."
)
@RUNS_DIR_OPTION
@click.pass_context
def gc(ctx: click.Context, yes: bool, as_json: bool, runs_dir: str | None) -> None:
    """Remove this project's images that no run refers to, and stopped containers of finished
    runs (a dry run unless --yes).

    \b
    Examples:
      reprise gc          # list what would be removed
      reprise gc --yes
    """
    from reprise.commands.gc import collect, describe

    project = project_of(ctx)
    result = collect(runs_dir_of(ctx, runs_dir), project.settings.project_name, remove=yes, say=say)
    if as_json:
        emit_json(result)
        return
    for line in describe(result):
        click.echo(line)
