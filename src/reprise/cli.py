"""The `reprise` command line. Results go to stdout, progress to stderr.

Heavy modules (docker, jinja2, yaml) are imported inside commands, so `reprise --help` is fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reprise import __version__
from reprise.errors import EXIT_INTERRUPTED, RepriseError

if TYPE_CHECKING:
    from reprise.engine import Engine
    from reprise.project import Project


def say(message: str) -> None:
    click.echo(f"reprise: {message}", err=True)


def quiet(_: str) -> None:
    return None


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


class _Group(click.Group):
    """Turns reprise's own errors into one message on stderr and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RepriseError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("reprise: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


class _DashDashCommand(click.Command):
    """Keeps everything after the first ``--`` apart, as the command to run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["reprise.command"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def _project(ctx: click.Context) -> Project:
    from reprise.project import find_root, load_project

    root = ctx.obj.get("project_dir")
    return load_project(Path(root) if root else find_root(Path.cwd()))


def _engine() -> Engine:
    from reprise.engine import Engine

    return Engine.from_env()


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  reprise init                       add a [tool.reprise] section to pyproject.toml
  reprise build --dry-run            print the Dockerfile reprise would build
  reprise run optim.lr=0.01 --seed 7 train with an override and a seed
  reprise run -- python eval.py      run another command in the same environment
""",
)
@click.version_option(__version__, prog_name="reprise")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Project directory (default: the nearest one with a pyproject.toml).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: str | None) -> None:
    """reprise: containerized training runs you can rerun bit-for-bit."""
    ctx.ensure_object(dict)
    ctx.obj["project_dir"] = project_dir


@cli.command()
@click.option("--force", is_flag=True, help="Replace an existing [tool.reprise] section.")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Add a commented [tool.reprise] section to pyproject.toml.

    \b
    Example:
      reprise init && git add pyproject.toml && git commit -m "reprise settings"
    """
    from reprise.initialize import init_project
    from reprise.project import find_root

    root = Path(ctx.obj["project_dir"]) if ctx.obj["project_dir"] else find_root(Path.cwd())
    path = init_project(root, force=force)
    click.echo(str(path))


@cli.command()
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
    from reprise import builder
    from reprise.project import read_lock

    project = _project(ctx)
    lock = read_lock(project)
    engine = _engine()
    if dry_run:
        _, plan, _ = builder.prepare(project, engine, say, lock=lock)
        say(f"image tag: {plan.tag}")
        click.echo(plan.dockerfile, nl=False)
        return
    result = builder.build(project, engine, say, force=force, lock=lock)
    out: dict[str, Any] = {"tag": result.plan.tag, "id": result.image_id, "built": result.built}
    if push:
        from reprise.share import push_image, registry_for

        ref = push_image(engine, result.plan.tag, registry_for(project.settings, registry), say)
        out["pushed"] = ref
    if as_json:
        _emit_json(out)
    else:
        click.echo(out.get("pushed") or result.plan.tag)


@cli.command(cls=_DashDashCommand)
@click.argument("overrides", nargs=-1)
@click.option(
    "--seed", type=int, default=None, help="Seed (default: the config's `seed`, else a new one)."
)
@click.option("--allow-dirty", is_flag=True, help="Run uncommitted changes; the patch is stored.")
@click.option("--gpus", default=None, help='GPUs: "all" or a count (default: [tool.reprise] gpus).')
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run.json on stdout.")
@click.pass_context
def run(
    ctx: click.Context,
    overrides: tuple[str, ...],
    seed: int | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Run the training command in the project's image, recording everything.

    OVERRIDES are config changes: a.b=value sets an existing key, +a.b=value adds one.
    Everything after -- replaces the configured command.

    \b
    Examples:
      reprise run
      reprise run optim.lr=0.01 epochs=5 --seed 1234
      reprise run +notes=baseline --allow-dirty
      reprise run -- python eval.py --split test
    """
    from reprise import builder, runner
    from reprise.project import read_lock

    project = _project(ctx)
    lock = read_lock(project)
    inputs = runner.prepare_run(
        project,
        overrides=overrides,
        seed=seed,
        command=ctx.meta.get("reprise.command"),
        allow_dirty=allow_dirty,
        gpus=runner.validate_gpus_flag(gpus),
        threads=threads,
    )
    engine = _engine()
    image = builder.build(project, engine, say, lock=lock)
    run_dir = runner.execute(engine, inputs, image, say=say)
    record = runner.load_finished(run_dir)
    _report_run(record, run_dir, as_json)
    if record["status"] != "succeeded":
        ctx.exit(1)


def _report_run(record: dict[str, Any], run_dir: Path, as_json: bool) -> None:
    if as_json:
        _emit_json(record)
        return
    click.echo(f"run      {record['run_id']}")
    click.echo(f"dir      {run_dir}")
    status = record["status"]
    if record.get("exit_code") not in (None, 0):
        status += f" (exit code {record['exit_code']})"
    click.echo(f"status   {status}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="reprise")
