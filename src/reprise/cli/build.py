"""`reprise build`."""

from __future__ import annotations

from typing import Any

import click

from reprise.cli.common import emit_json, project_of, say


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="Print the Dockerfile and the image tag; build nothing."
)
@click.option("--push", is_flag=True, help="Push the image to the registry; print repo@sha256:...")
@click.option(
    "--registry", default=None, help="Registry to push to (default: [tool.reprise] registry)."
)
@click.option("--force", is_flag=True, help="Build even when the image exists.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="A clean rebuild: every step of the build anew (the engine's cache unused) and "
    "every layer packed again; the same inputs still give the same image id.",
)
@click.option(
    "--verify",
    "verify_run",
    metavar="RUN",
    default=None,
    help="Rebuild RUN's image from its record and prove it identical (layer by layer).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
@click.pass_context
def build(
    ctx: click.Context,
    dry_run: bool,
    push: bool,
    registry: str | None,
    force: bool,
    no_cache: bool,
    verify_run: str | None,
    as_json: bool,
) -> None:
    """Build the project's image from uv.lock (reused when nothing that defines it changed).

    \b
    Examples:
      reprise build
      reprise build --dry-run > Dockerfile.preview
      reprise build --no-cache
      reprise build --push --registry 127.0.0.1:5000/team
      reprise build --verify 20261123-1412   # exit 0: environment identical, 5: it differs
    """
    from reprise.commands.build import build_project, plan_project

    if verify_run is not None:
        _verify(ctx, verify_run, as_json)
        return
    project = project_of(ctx)
    if dry_run:
        plan = plan_project(project, say)
        say(f"image tag: {plan.tag}")
        click.echo(plan.build_dockerfile, nl=False)
        return
    out: dict[str, Any] = build_project(
        project,
        say,
        force=force,
        push_to=registry if push else None,
        push=push,
        no_cache=no_cache,
    )
    if as_json:
        emit_json(out)
    else:
        click.echo(out.get("pushed") or out["tag"])


def _verify(ctx: click.Context, run: str, as_json: bool) -> None:
    from reprise.cli.common import locate_run, maybe_project
    from reprise.commands.verify import verify

    run_dir = locate_run(ctx, None, run)
    project = maybe_project(ctx)
    found = verify(
        run_dir, project.settings if project else None, project.root if project else None, say
    )
    if as_json:
        emit_json(found)
    else:
        click.echo(f"environment {found['verdict']}")
        click.echo(f"  recorded  {found['recorded_id']}")
        click.echo(f"  rebuilt   {found['rebuilt_id']}")
        click.echo(f"  proven    {found['proven']}")
    ctx.exit({"identical": 0, "differs": 5}.get(found["verdict"], 6))
