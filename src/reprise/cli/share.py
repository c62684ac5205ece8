"""`reprise push`, `reprise bundle export|inspect|import`."""

from __future__ import annotations

from pathlib import Path

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
from reprise.core.display import human_bytes


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option(
    "--registry", default=None, help="Registry (default: REPRISE_REGISTRY / [tool.reprise])."
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"run_id": ..., "pushed": "repo@sha256:..."}.'
)
@RUNS_DIR_OPTION
@click.pass_context
def push(
    ctx: click.Context, run: str, registry: str | None, as_json: bool, runs_dir: str | None
) -> None:
    """Push a run's image to a registry and record its digest in the run.

    \b
    Example:
      reprise push 20261123-1412 --registry 127.0.0.1:5000/team
    """
    from reprise.commands.push import push_run_to, registry_for

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    where = registry_for(project.settings if project else None, registry)
    ref = push_run_to(run_dir, where, say)
    if as_json:
        emit_json({"run_id": run_dir.name, "pushed": ref})
    else:
        click.echo(ref)


@click.group()
def bundle() -> None:
    """Self-contained run files (image + config + code + metadata) for collaborators."""


@bundle.command("export")
@click.argument("run", shell_complete=complete_runs)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write."
)
@click.option("--with-outputs", is_flag=True, help="Also carry every file the run produced.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle's summary as JSON.")
@RUNS_DIR_OPTION
@click.pass_context
def bundle_export(
    ctx: click.Context,
    run: str,
    output: str,
    with_outputs: bool,
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """Write RUN's image, records, config and code into one zstd-compressed file.

    \b
    Examples:
      reprise bundle export 20261123-1412 -o spiral.reprise
      reprise bundle export 20261123-1412 -o spiral-full.reprise --with-outputs
    """
    from reprise.cli.style import byte_meter
    from reprise.commands.bundle.export import export_run
    from reprise.commands.bundle.inspect import describe

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    with byte_meter("packing", say) as meter:
        header = export_run(
            run_dir,
            Path(output),
            with_outputs=with_outputs,
            repo=project.root if project else None,
            say=say,
            meter=meter,
        )
    if as_json:
        emit_json({"path": output, **describe(header)})
    else:
        click.echo(output)


@bundle.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the header and index as JSON.")
def bundle_inspect(file: str, as_json: bool) -> None:
    """Show what a bundle holds, without loading anything.

    \b
    Example:
      reprise bundle inspect spiral.reprise
    """
    from reprise.commands.bundle.inspect import describe, read_header

    info = describe(read_header(Path(file)))
    if as_json:
        emit_json(info)
        return
    from reprise.core.display import printable  # the bundle's author wrote every value

    click.echo(
        f"run         {printable(str(info['run_id']))} ({printable(str(info['experiment']))})"
    )
    layers = len(info["image"].get("diff_ids") or [])
    click.echo(f"image       {printable(str(info['image']['id']))} ({layers} layers)")
    if info["image"].get("repo_digest"):
        click.echo(f"pushed as   {printable(str(info['image']['repo_digest']))}")
    for part, totals in sorted(info["parts"].items()):
        click.echo(f"{part + '/':<11} {totals['files']} files, {human_bytes(totals['bytes'])}")
    click.echo(f"outputs     {'included' if info['with_outputs'] else 'not included'}")


@bundle.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the imported run's id and directory.")
@RUNS_DIR_OPTION
@click.pass_context
def bundle_import(ctx: click.Context, file: str, as_json: bool, runs_dir: str | None) -> None:
    """Verify every member, load the image, prove it is the recorded one, register the run.

    \b
    Examples:
      reprise bundle import spiral.reprise
      reprise bundle import spiral.reprise --runs-dir /data/runs && reprise reproduce RUN
    """
    from reprise.cli.style import byte_meter
    from reprise.commands.bundle.importer import import_file

    with byte_meter("reading the bundle", say) as meter:
        result = import_file(Path(file), runs_dir_of(ctx, runs_dir), say, meter)
    out = {
        "run_id": result.run_dir.name,
        "run_dir": str(result.run_dir),
        "image_id": result.image_id,
        "image_loaded": result.loaded,
        "already_imported": result.already_imported,
    }
    if as_json:
        emit_json(out)
    else:
        click.echo(f"run      {out['run_id']}")
        click.echo(f"dir      {out['run_dir']}")
        click.echo(
            f"image    {out['image_id']} ({'loaded' if result.loaded else 'already present'})"
        )
