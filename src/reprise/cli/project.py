"""`reprise init`, `reprise ci init`."""

from __future__ import annotations

from pathlib import Path

import click

from reprise import __version__
from reprise.cli.common import RUNS_DIR_OPTION, maybe_project, runs_dir_of, say, scoped_ref


@click.command()
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing [tool.reprise] section (and its sub-tables) with a fresh one.",
)
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Add a commented [tool.reprise] section to pyproject.toml, and runs/ to .gitignore.

    The command is found, in order: the first [project.scripts] entry, train.py or main.py,
    a Hydra app (conf/config.yaml and a .py file that imports hydra); else the section holds
    a TODO. config is set only when config.yaml (or .yml) exists. Every other byte of both
    files is kept, line endings included. Prints the file's path, then the commands to type
    next; says on stderr what it found.

    \b
    Example:
      reprise init
      git add pyproject.toml .gitignore && git commit -m "reprise settings"
    """
    from reprise.cli.common import say
    from reprise.commands.init import init_project, init_root

    cwd = Path.cwd()
    root = Path(ctx.obj["project_dir"]) if ctx.obj["project_dir"] else init_root(cwd)
    result = init_project(root, force=force, cwd=cwd)
    for note in result.notes:
        say(note)
    click.echo(str(result.path))
    click.echo("next steps:")
    for step in result.next_steps:
        click.echo(f"  {step}")


@click.group()
def ci() -> None:
    """Replay past runs in CI."""


@ci.command("init")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    default=".github/workflows/reprise-replay.yml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the workflow.",
)
@click.option(
    "--runner", default="self-hosted,gpu", show_default=True, help="Runner labels, comma-separated."
)
@click.option("--cron", default="0 3 * * 1", show_default=True, help="When to replay.")
@click.option("--registry", default=None, help="Registry the runs' images were pushed to.")
@click.option(
    "--install",
    "install_spec",
    default=f"reprise=={__version__}",
    show_default=True,
    help="What `uv tool install` installs on the runner.",
)
@click.option("--timeout-minutes", default=120, show_default=True, type=int)
@click.option("--force", is_flag=True, help="Overwrite an existing workflow file.")
@RUNS_DIR_OPTION
@click.pass_context
def ci_init(
    ctx: click.Context,
    runs: tuple[str, ...],
    output: str,
    runner: str,
    cron: str,
    registry: str | None,
    install_spec: str,
    timeout_minutes: int,
    force: bool,
    runs_dir: str | None,
) -> None:
    """Write a GitHub Actions workflow that replays RUNS and fails on divergence.

    \b
    Example:
      reprise ci init 20261123-1412 --registry ghcr.io/acme/reprise
      git add -f .github/workflows/reprise-replay.yml runs/spiral/20261123-1412... \\
        && git commit -m "replay in CI"    # the command ci init prints

    The runs it replays must be committed with it; runs/ is usually ignored by git, so
    ci init prints the `git add -f` that adds them.
    """
    from reprise.commands.ci import write_workflow

    project = maybe_project(ctx)
    workflow = write_workflow(
        runs=[scoped_ref(ctx, runs_dir, ref) for ref in runs],
        runs_dir=runs_dir_of(ctx, runs_dir),
        base=project.root if project else Path.cwd(),
        output=Path(output),
        runner=runner,
        cron=cron,
        registry=registry or (project.settings.registry if project else None),
        install_spec=install_spec,
        timeout_minutes=timeout_minutes,
        force=force,
    )
    if workflow.ignored:
        say(
            f"warning: git ignores {', '.join(workflow.ignored)}: a plain `git add` leaves "
            "the replayed runs out of the commit"
        )
    say(f"commit the workflow and the runs it replays: {workflow.git_add}")
    click.echo(str(workflow.path))
