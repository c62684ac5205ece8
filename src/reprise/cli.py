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


def _emit_json(data: Any, *, compact: bool = False) -> None:
    """One JSON value on stdout; ``compact`` for long lists (json's indenting encoder is slow)."""
    if compact:
        click.echo(json.dumps(data, sort_keys=True, separators=(",", ":")))
    else:
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
        click.echo(plan.build_dockerfile, nl=False)
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
@click.option(
    "--detach", "-d", is_flag=True, help="Start, print the run id, return (see attach/wait)."
)
@click.option(
    "--env",
    "-e",
    "env_flags",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Pass a variable (its value from here when none is given). Repeatable.",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="NAME=VALUE lines to pass. Repeatable.",
)
@click.option(
    "--secret",
    "secret_flags",
    multiple=True,
    metavar="NAME",
    help="Pass NAME, never recording its value. Names with TOKEN, SECRET, PASSWORD or KEY are secret anyway.",
)
@click.option("--memory", default=None, help="Memory limit, e.g. 16g (recorded).")
@click.option("--shm-size", default=None, help="/dev/shm size, e.g. 2g (recorded).")
@click.option("--cpus", type=click.FloatRange(min=0.01), default=None, help="CPU limit (recorded).")
@click.pass_context
def run(
    ctx: click.Context,
    overrides: tuple[str, ...],
    seed: int | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    as_json: bool,
    detach: bool,
    env_flags: tuple[str, ...],
    env_files: tuple[str, ...],
    secret_flags: tuple[str, ...],
    memory: str | None,
    shm_size: str | None,
    cpus: float | None,
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
      reprise run --detach --memory 32g --env WANDB_MODE=offline --secret HF_TOKEN
    """
    import os

    from reprise import builder, runner
    from reprise.envvars import resolve_env
    from reprise.project import read_lock
    from reprise.runstore import read_record

    project = _project(ctx)
    env = resolve_env(env_flags, [Path(f) for f in env_files], secret_flags, os.environ)
    lock = read_lock(project)
    inputs = runner.prepare_run(
        project,
        overrides=overrides,
        seed=seed,
        command=ctx.meta.get("reprise.command"),
        allow_dirty=allow_dirty,
        gpus=runner.validate_gpus_flag(gpus),
        threads=threads,
        env=env,
        resources=runner.Resources(memory=memory, shm_size=shm_size, cpus=cpus),
    )
    engine = _engine()
    image = builder.build(project, engine, say, lock=lock)
    run_dir = runner.execute(engine, inputs, builder.run_image(image), say=say, detach=detach)
    record = read_record(run_dir)
    if detach:
        say(f"started; follow it with: reprise attach {record['run_id']}")
    _report_run(record, run_dir, as_json)
    if record["status"] not in ("succeeded", "running"):
        ctx.exit(1)


def _maybe_project(ctx: click.Context) -> Project | None:
    from reprise.errors import ProjectError

    try:
        return _project(ctx)
    except ProjectError:
        if ctx.obj.get("project_dir"):
            raise
        return None


def _runs_dir(ctx: click.Context, flag: str | None) -> Path:
    from reprise.errors import UsageError

    if flag:
        return Path(flag)
    project = _maybe_project(ctx)
    if project is None:
        raise UsageError(
            "no project here to find runs in",
            hint="run inside the project, or pass --project DIR or --runs-dir DIR",
        )
    return project.settings.runs_dir


_RUNS_DIR_OPTION = click.option(
    "--runs-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where runs are (default: the project's runs-dir).",
)


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--registry", default=None, help="Registry to pull the image from, by digest.")
@click.option(
    "--rebuild", is_flag=True, help="Rebuild the image when it cannot be had (a new artifact)."
)
@click.option(
    "--strict", is_flag=True, help="Refuse to run when the machine voids the bitwise guarantee."
)
@click.option("--allow-data-change", is_flag=True, help="Run even when a dataset's hash differs.")
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write JUnit XML here.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the verdict object (a list for several runs)."
)
@_RUNS_DIR_OPTION
@click.pass_context
def reproduce(
    ctx: click.Context,
    runs: tuple[str, ...],
    registry: str | None,
    rebuild: bool,
    strict: bool,
    allow_data_change: bool,
    junit_path: str | None,
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """Rerun past runs from their records and prove the outputs bit-for-bit identical.

    RUN is a run id, a unique prefix of one, a run directory, or a bundle file (imported
    first). Exit codes: 0 identical,
    1 diverged, 2 bad input, 3 could not reproduce (image unavailable, --strict mismatch).

    \b
    Examples:
      reprise reproduce 20261123-1412
      reprise reproduce runs/spiral/20261123-141200-5f3a9c1e --registry 127.0.0.1:5000/team
      reprise reproduce RUN_A RUN_B --junit reprise-junit.xml   # in CI
    """
    from reprise.errors import RepriseError
    from reprise.junit import verdicts_to_junit
    from reprise.reproduce import Verdict, error_verdict
    from reprise.reproduce import reproduce as reproduce_run
    from reprise.runstore import atomic_write, find_run

    where = _runs_dir(ctx, runs_dir)
    project = _maybe_project(ctx)
    registry = registry or (project.settings.registry if project else None)
    engine = _engine()
    verdicts: list[Verdict] = []
    for ref in runs:
        run_dir: Path | None = None
        try:
            if Path(ref).is_file():
                from reprise.bundle import import_bundle

                say(f"importing bundle {ref}")
                run_dir = import_bundle(engine, Path(ref), where, say).run_dir
            else:
                run_dir = find_run(where, ref)
            say(f"reproducing {run_dir.name}")
            verdict = reproduce_run(
                engine,
                run_dir,
                repo=project.root if project else None,
                registry=registry,
                rebuild=rebuild,
                strict=strict,
                say=say,
                data_paths=project.settings.data if project else None,
                allow_data_change=allow_data_change,
                card_template=project.settings.card_template if project else None,
            )
        except RepriseError as exc:
            if len(runs) == 1 and not junit_path and not as_json:
                raise
            click.echo(exc.render(), err=True)
            verdict = error_verdict(ref, run_dir, exc)
        verdicts.append(verdict)
        if not as_json:
            _report_verdict(verdict)
    data = [v.to_dict() for v in verdicts]
    if junit_path:
        atomic_write(Path(junit_path), verdicts_to_junit(data))
    if as_json:
        _emit_json(data[0] if len(data) == 1 else data)
    ctx.exit(max(v.exit_code for v in verdicts))


def _report_verdict(verdict: Any) -> None:
    click.echo(f"run      {verdict.run_id}")
    if verdict.rerun_id:
        click.echo(f"rerun    {verdict.rerun_id}  ({verdict.rerun_dir})")
    if verdict.image:
        click.echo(f"image    {verdict.image['id']} ({verdict.image['source']})")
    if verdict.data_changed:
        click.echo(f"data     changed: {', '.join(verdict.data_changed)} (--allow-data-change)")
    voids = [d for d in verdict.target if d.voids]
    click.echo(
        "target   " + ("guarantee holds" if not voids else "; ".join(d.describe() for d in voids))
    )
    if verdict.verdict == "identical":
        click.echo(f"verdict  identical ({verdict.files.to_dict()['same']} files bit-for-bit)")
    elif verdict.verdict == "diverged":
        click.echo("verdict  diverged")
        for line in verdict.details:
            click.echo(f"  - {line}")
    else:
        click.echo(f"verdict  error: {verdict.error}")


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON object.")
@_RUNS_DIR_OPTION
@click.pass_context
def diff(ctx: click.Context, run_a: str, run_b: str, as_json: bool, runs_dir: str | None) -> None:
    """Compare two runs: outputs (as reproduce does), config, image, code, seed, environment.

    Exit code 0 when the outputs are identical, 1 when they differ.

    \b
    Examples:
      reprise diff 20261123-1412 20261123-1530
      reprise diff RUN_A RUN_B --json | jq .outputs.changed
    """
    from reprise.rundiff import compare_runs
    from reprise.runstore import find_run

    where = _runs_dir(ctx, runs_dir)
    a, b = find_run(where, run_a), find_run(where, run_b)
    engine = None
    try:
        engine = _engine()
    except RepriseError:
        say("no engine: tensor files are compared by hash only")
    result = compare_runs(a, b, engine)
    if as_json:
        _emit_json(result)
    else:
        for line in result["summary"]:
            click.echo(line)
    ctx.exit(0 if result["outputs"]["identical"] else 1)


@cli.command()
@click.argument("run")
@click.option(
    "--registry", default=None, help="Registry (default: REPRISE_REGISTRY / [tool.reprise])."
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"run_id": ..., "pushed": "repo@sha256:..."}.'
)
@_RUNS_DIR_OPTION
@click.pass_context
def push(
    ctx: click.Context, run: str, registry: str | None, as_json: bool, runs_dir: str | None
) -> None:
    """Push a run's image to a registry and record its digest in the run.

    \b
    Example:
      reprise push 20261123-1412 --registry 127.0.0.1:5000/team
    """
    from reprise.errors import UsageError
    from reprise.runstore import find_run
    from reprise.share import push_run

    run_dir = find_run(_runs_dir(ctx, runs_dir), run)
    project = _maybe_project(ctx)
    registry = registry or (project.settings.registry if project else None)
    if not registry:
        raise UsageError("no registry given", hint="pass --registry, or set REPRISE_REGISTRY")
    ref = push_run(_engine(), run_dir, registry.rstrip("/"), say)
    if as_json:
        _emit_json({"run_id": run_dir.name, "pushed": ref})
    else:
        click.echo(ref)


@cli.group()
def bundle() -> None:
    """Self-contained run files (image + config + code + metadata) for collaborators."""


@bundle.command("export")
@click.argument("run")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write."
)
@click.option("--with-outputs", is_flag=True, help="Also carry every file the run produced.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle's summary as JSON.")
@_RUNS_DIR_OPTION
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
    from reprise.bundle import describe, export_bundle
    from reprise.runstore import find_run

    run_dir = find_run(_runs_dir(ctx, runs_dir), run)
    project = _maybe_project(ctx)
    header = export_bundle(
        _engine(),
        run_dir,
        Path(output),
        with_outputs=with_outputs,
        repo=project.root if project else None,
        say=say,
    )
    if as_json:
        _emit_json({"path": output, **describe(header)})
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
    from reprise.bundle import describe, read_header

    info = describe(read_header(Path(file)))
    if as_json:
        _emit_json(info)
        return
    click.echo(f"run         {info['run_id']} ({info['experiment']})")
    click.echo(f"image       {info['image']['id']} ({len(info['image']['diff_ids'])} layers)")
    if info["image"].get("repo_digest"):
        click.echo(f"pushed as   {info['image']['repo_digest']}")
    for part, totals in sorted(info["parts"].items()):
        click.echo(f"{part + '/':<11} {totals['files']} files, {totals['bytes']} bytes")
    click.echo(f"outputs     {'included' if info['with_outputs'] else 'not included'}")


@bundle.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the imported run's id and directory.")
@_RUNS_DIR_OPTION
@click.pass_context
def bundle_import(ctx: click.Context, file: str, as_json: bool, runs_dir: str | None) -> None:
    """Verify every member, load the image, prove it is the recorded one, register the run.

    \b
    Examples:
      reprise bundle import spiral.reprise
      reprise bundle import spiral.reprise --runs-dir /data/runs && reprise reproduce RUN
    """
    from reprise.bundle import import_bundle

    result = import_bundle(_engine(), Path(file), _runs_dir(ctx, runs_dir), say)
    out = {
        "run_id": result.run_dir.name,
        "run_dir": str(result.run_dir),
        "image_id": result.image_id,
        "image_loaded": result.loaded,
        "already_imported": result.already_imported,
    }
    if as_json:
        _emit_json(out)
    else:
        click.echo(f"run      {out['run_id']}")
        click.echo(f"dir      {out['run_dir']}")
        click.echo(
            f"image    {out['image_id']} ({'loaded' if result.loaded else 'already present'})"
        )


@cli.command()
@click.argument("run")
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
    help="A Jinja template (default: [tool.reprise] card-template, else reprise's own).",
)
@_RUNS_DIR_OPTION
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
    from reprise.card import write_card
    from reprise.runstore import find_run

    run_dir = find_run(_runs_dir(ctx, runs_dir), run)
    project = _maybe_project(ctx)
    template_path = (
        Path(template) if template else (project.settings.card_template if project else None)
    )
    path = write_card(run_dir, template_path=template_path, output=Path(output) if output else None)
    click.echo(str(path))


@cli.command("ls")
@click.option("--experiment", "-e", default=None, help="Only this experiment.")
@click.option(
    "--status",
    "-s",
    default=None,
    type=click.Choice(["running", "succeeded", "failed", "interrupted", "lost"]),
    help="Only runs with this status.",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of run summaries.")
@_RUNS_DIR_OPTION
@click.pass_context
def ls_(
    ctx: click.Context,
    experiment: str | None,
    status: str | None,
    limit: int | None,
    as_json: bool,
    runs_dir: str | None,
) -> None:
    """List runs, newest first.

    \b
    Examples:
      reprise ls
      reprise ls -e spiral -s failed
      reprise ls --json | jq '.[0].run_id'
    """
    from reprise.listing import all_summaries, filter_runs

    where = _runs_dir(ctx, runs_dir)
    summaries = all_summaries(where)
    running = [Path(s["path"]) for s in summaries if s["status"] == "running"]
    if running:
        _reconcile_running(where, only=running)
        summaries = all_summaries(where)
    runs = filter_runs(summaries, experiment=experiment, status=status, limit=limit)
    if as_json:
        _emit_json(runs, compact=True)
        return
    if not runs:
        say("no runs")
        return
    click.echo(
        f"{'RUN':<26} {'EXPERIMENT':<16} {'STATUS':<12} {'SEED':>10}  {'VERDICT':<10} COMMAND"
    )
    for r in runs:
        command = " ".join(r.get("command") or [])
        click.echo(
            f"{r['run_id']:<26} {str(r['experiment'])[:16]:<16} {r['status']!s:<12} "
            f"{r['seed']!s:>10}  {r.get('last_verdict') or '-'!s:<10} {command[:40]}"
        )


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the whole run.json.")
@_RUNS_DIR_OPTION
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Summarize one run: status, times, image, commit, seed, metrics, verdicts.

    \b
    Examples:
      reprise show 20261123-1412
      reprise show 20261123-1412 --json | jq .image
    """
    from reprise.runstore import find_run, read_record
    from reprise.showrun import describe_run

    run_dir = find_run(_runs_dir(ctx, runs_dir), run)
    record = read_record(run_dir)
    if record["status"] == "running":
        _reconcile_running(run_dir.parent.parent, only=[run_dir])
        record = read_record(run_dir)
    if as_json:
        _emit_json(record)
        return
    for line in describe_run(record, run_dir):
        click.echo(line)


@cli.command()
@click.option("--yes", is_flag=True, help="Remove them (without it, only list what would go).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print what was (or would be) removed as JSON."
)
@_RUNS_DIR_OPTION
@click.pass_context
def gc(ctx: click.Context, yes: bool, as_json: bool, runs_dir: str | None) -> None:
    """Remove this project's images that no run refers to, and stopped containers of finished
    runs (a dry run unless --yes).

    \b
    Examples:
      reprise gc          # list what would be removed
      reprise gc --yes
    """
    from reprise.gc import collect

    project = _project(ctx)
    result = collect(
        _engine(), _runs_dir(ctx, runs_dir), project.settings.project_name, remove=yes, say=say
    )
    if as_json:
        _emit_json(result)
        return
    verb = "removed" if yes else "would remove"
    for container in result["containers"]:
        click.echo(f"{verb} stopped container {container[:12]} (its run is finished)")
    for image in result["images"]:
        click.echo(f"{verb} {image['id']} {' '.join(image['tags'])} ({image['size']} bytes)")
    click.echo(
        f"{len(result['images'])} images, {result['bytes']} bytes {verb}"
        + ("" if yes else " (pass --yes to remove)")
    )


def _follow_run(
    ctx: click.Context, run: str, runs_dir: str | None, *, echo: bool, as_json: bool
) -> None:
    from reprise.lifecycle import follow
    from reprise.runstore import find_run, read_record

    run_dir = find_run(_runs_dir(ctx, runs_dir), run)
    record = read_record(run_dir)
    engine = _engine()
    if record["status"] == "running" and not (record.get("container") or {}).get("id"):
        from reprise.lifecycle import reconcile

        record = reconcile(engine, run_dir, say=say)
    if record["status"] == "running":
        project = _maybe_project(ctx)
        record = follow(
            engine,
            run_dir,
            say=say,
            echo=echo,
            on_interrupt="detach",
            card_template=project.settings.card_template if project else None,
        )
    else:
        say(f"run {record['run_id']} has already ended")
    _report_run(record, run_dir, as_json)
    if record["status"] != "succeeded":
        ctx.exit(1)


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run.json on stdout.")
@_RUNS_DIR_OPTION
@click.pass_context
def attach(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Re-attach to a running run: its output from where it is, then finish its record.

    Ctrl-C detaches again (the run goes on). Exit code 1 unless the run succeeded.

    \b
    Examples:
      reprise run --detach && reprise attach 20261123-1412
      reprise attach 20261123-1412    # after an SSH drop or a killed CLI
    """
    _follow_run(ctx, run, runs_dir, echo=True, as_json=as_json)


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run.json on stdout.")
@_RUNS_DIR_OPTION
@click.pass_context
def wait(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Wait for a run to end (its output goes to logs/run.log only), then finish its record.

    \b
    Example:
      reprise wait 20261123-1412 && reprise reproduce 20261123-1412
    """
    _follow_run(ctx, run, runs_dir, echo=False, as_json=as_json)


@cli.group()
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
@_RUNS_DIR_OPTION
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
      git add .github/workflows/reprise-replay.yml runs/ && git commit -m "replay in CI"
    """
    from reprise.ciconfig import render_workflow
    from reprise.errors import UsageError
    from reprise.runstore import atomic_write, find_run

    where = _runs_dir(ctx, runs_dir)
    project = _maybe_project(ctx)
    base = project.root if project else Path.cwd()
    run_ids = [find_run(where, ref).name for ref in runs]
    path = Path(output)
    if path.exists() and not force:
        raise UsageError(f"{path} exists", hint="pass --force to overwrite it")
    text = render_workflow(
        runs=run_ids,
        runs_dir=_relative_to(where.resolve(), base.resolve()),
        runner=[label.strip() for label in runner.split(",") if label.strip()],
        cron=cron,
        registry=registry or (project.settings.registry if project else None),
        install_spec=install_spec,
        timeout_minutes=timeout_minutes,
    )
    atomic_write(path, text)
    click.echo(str(path))


def _relative_to(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _reconcile_running(runs_dir: Path, only: list[Path] | None = None) -> None:
    """Finish or mark `lost` the runs whose `running` record no longer matches the engine."""
    from reprise.errors import EngineError
    from reprise.lifecycle import reconcile
    from reprise.listing import all_summaries

    targets = only or [Path(s["path"]) for s in all_summaries(runs_dir) if s["status"] == "running"]
    if not targets:
        return
    try:
        engine = _engine()
    except EngineError:
        say("warning: no engine answers; `running` runs are shown as recorded")
        return
    for run_dir in targets:
        try:
            record = reconcile(engine, run_dir, say=say)
        except RepriseError as exc:
            say(f"warning: {run_dir.name}: {exc.message}")
            continue
        if record["status"] != "running":
            say(f"{run_dir.name}: {record['status']} ({record.get('reason') or 'collected'})")


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
