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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
@click.pass_context
def build(
    ctx: click.Context, dry_run: bool, push: bool, registry: str | None, force: bool, as_json: bool
) -> None:
    """Build the project's image from uv.lock (reused when nothing that defines it changed).

    \b
    Examples:
      reprise build
      reprise build --dry-run > Dockerfile.preview
      reprise build --push --registry 127.0.0.1:5000/team
    """
    from reprise.commands.build import build_project, plan_project

    project = project_of(ctx)
    if dry_run:
        plan = plan_project(project, say)
        say(f"image tag: {plan.tag}")
        click.echo(plan.build_dockerfile, nl=False)
        return
    out: dict[str, Any] = build_project(
        project, say, force=force, push_to=registry if push else None, push=push
    )
    if as_json:
        emit_json(out)
    else:
        click.echo(out.get("pushed") or out["tag"])
