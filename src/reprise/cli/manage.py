"""`reprise tag`, `reprise note`, `reprise stop`, `reprise logs`, `reprise rm`."""

from __future__ import annotations

import sys

import click

from reprise.cli.common import (
    JSON_RECORD_OPTION,
    RUNS_DIR_OPTION,
    complete_runs,
    emit_json,
    locate_run,
    maybe_project,
    report_run,
    say,
)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.argument("tags", nargs=-1)
@click.option(
    "--remove", "-d", "removed", multiple=True, metavar="TAG", help="Take TAG off. Repeatable."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run id and its tags as JSON.")
@RUNS_DIR_OPTION
@click.pass_context
def tag(
    ctx: click.Context,
    run: str,
    tags: tuple[str, ...],
    removed: tuple[str, ...],
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """Add TAGS to RUN (or take some off); `ls` and `show` show them, `ls --tag` filters.

    \b
    Examples:
      reprise tag latest baseline paper:fig3
      reprise tag 5f3a9c1e --remove baseline
    """
    from reprise.commands.manage import tag_run
    from reprise.core.display import printable
    from reprise.core.errors import UsageError

    if not tags and not removed:
        raise UsageError("no tag given", hint="e.g. reprise tag latest baseline")
    record = tag_run(locate_run(ctx, runs_dir, run), tags, removed)
    if as_json:
        emit_json({"run_id": record["run_id"], "tags": record["tags"]})
        return
    click.echo(f"{record['run_id']}  {printable(' '.join(record['tags'])) or '(no tags)'}")


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.argument("text", nargs=-1, required=True)
@RUNS_DIR_OPTION
@click.pass_context
def note(ctx: click.Context, run: str, text: tuple[str, ...], runs_dir: str | None) -> None:
    """Add a note to RUN's record (the words of TEXT, joined); `show` lists its notes, `ls`
    shows the last one.

    \b
    Example:
      reprise note latest "lr too high: loss diverged after epoch 3"
    """
    from reprise.commands.manage import note_run
    from reprise.core.display import printable

    record = note_run(locate_run(ctx, runs_dir, run), " ".join(text))
    last = record["notes"][-1]
    click.echo(f"{record['run_id']}  {last['at']}  {printable(last['text'])}")


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option(
    "--time",
    "-t",
    "timeout",
    type=click.IntRange(0, 3600),
    default=10,
    show_default=True,
    help="Seconds to wait for the job to exit before killing it.",
)
@JSON_RECORD_OPTION
@RUNS_DIR_OPTION
@click.pass_context
def stop(ctx: click.Context, run: str, timeout: int, as_json: bool, runs_dir: str | None) -> None:
    """Stop a running run where it runs and record it `interrupted` (as Ctrl-C does).

    The job gets SIGTERM, then SIGKILL after --time seconds. A run that has ended is left as
    it is. `reprise resume RUN` continues it from its last checkpoint.

    \b
    Examples:
      reprise stop latest
      reprise stop 5f3a9c1e --time 60   # give the job a minute to save a checkpoint
    """
    from reprise.commands.manage import stop_run

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    record = stop_run(
        run_dir,
        timeout=timeout,
        card=project.settings.card if project else None,
        say=say,
    )
    report_run(record, run_dir, as_json)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option("--follow", "-f", is_flag=True, help="Follow a running run's output to its end.")
@RUNS_DIR_OPTION
@click.pass_context
def logs(ctx: click.Context, run: str, follow: bool, runs_dir: str | None) -> None:
    """Print RUN's output: logs/run.log of an ended run; a running run's output so far from
    where it runs (secrets masked), to its end with -f.

    \b
    Examples:
      reprise logs latest
      reprise logs latest -f
      reprise logs baseline | grep loss
    """
    from reprise.commands.manage import stream_logs

    sys.stdout.flush()
    stream_logs(locate_run(ctx, runs_dir, run), sys.stdout.buffer, follow=follow, say=say)


@click.command("rm")
@click.argument("runs", nargs=-1, required=True, shell_complete=complete_runs)
@click.option("--yes", "-y", is_flag=True, help="Remove without asking.")
@RUNS_DIR_OPTION
@click.pass_context
def rm(ctx: click.Context, runs: tuple[str, ...], yes: bool, runs_dir: str | None) -> None:
    """Remove runs: their whole run directories. Asks first, unless --yes; a running run is
    refused (stop it first). Their images stay until `reprise gc`.

    \b
    Examples:
      reprise rm latest
      reprise rm 5f3a9c1e 0badcafe --yes
    """
    from reprise.commands.manage import check_removable, remove_run
    from reprise.core.display import printable

    found = check_removable([locate_run(ctx, runs_dir, ref) for ref in runs], say=say)
    if not yes:
        for run_dir, record in found:
            what = f"{record['status']}" if record else "record unreadable"
            if record and record.get("name"):
                what += f", {printable(str(record['name']))}"
            click.echo(f"  {run_dir} ({what})", err=True)
        try:
            click.confirm(
                f"remove {'this run' if len(found) == 1 else f'these {len(found)} runs'}?",
                abort=True,
                err=True,
            )
        except click.Abort:
            say("nothing removed (pass --yes to remove without asking)")
            ctx.exit(1)
    for run_dir, _ in found:
        remove_run(run_dir)
        click.echo(f"removed {run_dir}")
