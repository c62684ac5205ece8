"""`reprise run`, `reprise attach`, `reprise wait`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import click

from reprise.cli.common import (
    JSON_RECORD_OPTION,
    RUNS_DIR_OPTION,
    DashDashCommand,
    complete_runs,
    host_options,
    locate_run,
    maybe_project,
    project_of,
    report_run,
    say,
)
from reprise.core.resources import DEFAULT_PIDS_LIMIT


@click.command(cls=DashDashCommand)
@click.argument("overrides", nargs=-1)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=None,
    help="Seed, 0 to 2**32-1 (default: the config's `seed`, else a new one).",
)
@click.option("--allow-dirty", is_flag=True, help="Run uncommitted changes; the patch is stored.")
@click.option("--gpus", default=None, help='GPUs: "all" or a count (default: [tool.reprise] gpus).')
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (recorded).")
@click.option(
    "--determinism",
    type=click.Choice(["strict", "warn", "off"]),
    default=None,
    help="torch's deterministic algorithms: strict raises on an op without one, warn records "
    "it, off leaves torch as is (default: [tool.reprise] determinism, else strict; recorded).",
)
@click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="Name the run (recorded; then NAME works wherever a run id does). Unique per runs dir.",
)
@click.option(
    "--multirun",
    "-m",
    is_flag=True,
    help="A sweep, in Hydra's grammar: key=a,b,c, key=range(1,4), key=choice(a,b); one run "
    "per combination, one image, grouped under a sweep id (reprise ls --sweep ID).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="With -m: how many runs at a time (their output to their logs only when more than 1).",
)
@JSON_RECORD_OPTION
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
@click.option(
    "--pids-limit",
    type=click.IntRange(16, 4_194_304),
    default=DEFAULT_PIDS_LIMIT,
    show_default=True,
    help="Most processes and threads the job may have (recorded).",
)
@host_options
@click.option(
    "--slurm",
    "on_slurm",
    is_flag=True,
    help="Submit to the Slurm cluster this machine's Slurm client talks to (defaults: "
    "[tool.reprise.slurm]); the runs directory must be shared with its nodes.",
)
@click.option("--nodes", type=click.IntRange(1, 4096), default=None, help="Nodes (--slurm).")
@click.option(
    "--gpus-per-node",
    type=click.IntRange(0, 64),
    default=None,
    help="GPUs and ranks per node (--slurm).",
)
@click.option("--partition", default=None, help="Slurm partition (--slurm).")
@click.option("--time", "time_limit", default=None, help="Time limit, e.g. 2:00:00 (--slurm).")
@click.option("--account", default=None, help="Slurm account (--slurm).")
@click.option(
    "--requeue/--no-requeue",
    default=None,
    help="Whether Slurm may requeue the job; a requeued job is followed through its restart "
    "(--slurm; default: [tool.reprise.slurm] requeue, true).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the batch script, submit nothing (--slurm; the image is built or reused).",
)
@click.pass_context
def run(
    ctx: click.Context,
    overrides: tuple[str, ...],
    seed: int | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    determinism: str | None,
    name: str | None,
    multirun: bool,
    jobs: int,
    as_json: bool,
    detach: bool,
    env_flags: tuple[str, ...],
    env_files: tuple[str, ...],
    secret_flags: tuple[str, ...],
    memory: str | None,
    shm_size: str | None,
    cpus: float | None,
    pids_limit: int,
    host: str | None,
    context: str | None,
    on_slurm: bool,
    nodes: int | None,
    gpus_per_node: int | None,
    partition: str | None,
    time_limit: str | None,
    account: str | None,
    requeue: bool | None,
    dry_run: bool,
) -> None:
    """Run the training command in the project's image, recording everything.

    OVERRIDES are config changes: a.b=value sets an existing key, +a.b=value adds one.
    Everything after -- replaces the configured command.

    \b
    Examples:
      reprise run
      reprise run optim.lr=0.01 train.epochs=5 --seed 1234
      reprise run +notes=baseline --allow-dirty
      reprise run -- python eval.py --split test
      reprise run --detach --memory 32g --env WANDB_MODE=offline --secret HF_TOKEN
      reprise run --host ssh://me@gpu-box   # inputs streamed there, outputs back here
      reprise run --slurm --nodes 2 --gpus-per-node 8 --partition gpu --time 4:00:00
      reprise run --name baseline && reprise show baseline
      reprise run -m optim.lr=0.01,0.1 seed=1,2,3 -j 2
    """
    from reprise.commands.manage import check_name_free, set_name
    from reprise.commands.run import launch, validate_gpus_flag
    from reprise.commands.slurm import SlurmRequest
    from reprise.core.envvars import resolve_env
    from reprise.core.errors import UsageError
    from reprise.core.resources import validated_resources
    from reprise.edges.runstore import read_record

    texts = []
    for name in env_files:
        try:
            texts.append((name, Path(name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--env-file {name}: {getattr(exc, 'strerror', None) or exc}") from exc
    env = resolve_env(env_flags, texts, secret_flags, os.environ)
    resources = validated_resources(
        memory=memory, shm_size=shm_size, cpus=cpus, pids_limit=pids_limit
    )
    flags = SlurmRequest(
        nodes, gpus_per_node, partition, time_limit, account, on_slurm, requeue=requeue
    )
    slurm = flags if on_slurm or any(v is not None for v in flags.flags().values()) else None
    project = project_of(ctx)
    if not multirun and jobs != 1:
        raise UsageError("-j runs a sweep's runs at a time: give it with -m")
    if multirun:
        if name is not None or detach or slurm is not None or dry_run:
            given = (
                "--name" if name is not None else "--detach" if detach
                else "--dry-run" if dry_run and slurm is None else "--slurm"
            )  # fmt: skip
            raise UsageError(
                f"{given} is for one run, not a sweep (a sweep runs on an engine)",
                hint="a sweep's runs are found with: reprise ls --sweep latest",
            )
        _sweep(ctx, project, overrides, jobs, as_json, **{
            "seed": seed, "command": ctx.meta.get("reprise.command"), "allow_dirty": allow_dirty,
            "gpus": validate_gpus_flag(gpus), "threads": threads, "env": env,
            "resources": resources, "host": host, "context": context,
            "determinism": determinism,
        })  # fmt: skip
        return
    if name is not None:
        check_name_free(project.settings.runs_dir, name)
    result = launch(
        project,
        overrides=overrides,
        seed=seed,
        command=ctx.meta.get("reprise.command"),
        allow_dirty=allow_dirty,
        gpus=validate_gpus_flag(gpus),
        threads=threads,
        env=env,
        resources=resources,
        detach=detach,
        say=say,
        host=host,
        context=context,
        determinism=determinism,
        slurm=slurm,
        dry_run=dry_run,
    )
    if isinstance(result, str):  # --dry-run: the batch script
        click.echo(result, nl=False)
        return
    run_dir = result
    # The name is recorded as launch returns (at once with --detach). Once launch takes
    # name= and hands it to prepare_run, the first record holds it and this only confirms it.
    record = set_name(run_dir, name) if name is not None else read_record(run_dir)
    if detach:
        say(f"started; follow it with: reprise attach {record['run_id']}")
    report_run(record, run_dir, as_json)
    if record["status"] not in ("succeeded", "running"):
        ctx.exit(1)


def _sweep(
    ctx: click.Context,
    project: Any,
    overrides: tuple[str, ...],
    jobs: int,
    as_json: bool,
    **run_args: Any,
) -> None:
    from reprise.cli.common import emit_json
    from reprise.cli.compare import print_comparison
    from reprise.commands.compare import compare
    from reprise.commands.sweep import launch_sweep, summary
    from reprise.core.errors import UsageError

    if not overrides:
        raise UsageError("-m sweeps over overrides: give some, e.g. optim.lr=0.01,0.1 seed=1,2")
    result = launch_sweep(project, overrides=overrides, jobs=jobs, say=say, **run_args)
    counts = summary(result)
    table = compare(list(result.run_dirs), directions=project.settings.metrics)
    if as_json:
        emit_json({**counts, "comparison": table})
    else:
        print_comparison(table, only_changed=False)
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts["statuses"].items()))
        say(f"sweep {result.id}: {statuses}; reprise compare --sweep {result.id}")
    if counts["statuses"].get("succeeded", 0) != counts["planned"]:
        ctx.exit(1)


def _pick_up(
    ctx: click.Context, run: str, runs_dir: str | None, *, echo: bool, as_json: bool
) -> None:
    from reprise.cli.style import spinner
    from reprise.commands.lifecycle import pick_up

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    waiting = contextlib.nullcontext(say) if echo else spinner(f"waiting for {run}", say)
    with waiting as step:
        record = pick_up(
            run_dir,
            echo=echo,
            card=project.settings.card if project else None,
            say=step,
        )
    report_run(record, run_dir, as_json)
    if record["status"] != "succeeded":
        ctx.exit(1)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@JSON_RECORD_OPTION
@RUNS_DIR_OPTION
@click.pass_context
def attach(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Re-attach to a running run: its output from where it is, then finish its record.

    Ctrl-C detaches again (the run goes on). Exit code 1 unless the run succeeded.

    \b
    Examples:
      reprise run --detach && reprise attach 20261123-1412
      reprise attach 20261123-1412    # after an SSH drop or a killed CLI
    """
    _pick_up(ctx, run, runs_dir, echo=True, as_json=as_json)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@JSON_RECORD_OPTION
@RUNS_DIR_OPTION
@click.pass_context
def wait(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Wait for a run to end (its output goes to logs/run.log only), then finish its record.

    \b
    Example:
      reprise wait 20261123-1412 && reprise reproduce 20261123-1412
    """
    _pick_up(ctx, run, runs_dir, echo=False, as_json=as_json)


@click.command()
@click.argument("run", shell_complete=complete_runs)
@JSON_RECORD_OPTION
@RUNS_DIR_OPTION
@click.pass_context
def fetch(ctx: click.Context, run: str, as_json: bool, runs_dir: str | None) -> None:
    """Fetch a run's outputs from the host it ran on, when that failed as it ended.

    The run's container was kept there for this; once its outputs are here, they are
    recorded (manifest, runtime record) and the container is removed.

    \b
    Example:
      reprise fetch 20261123-1412 && reprise reproduce 20261123-1412
    """
    from reprise.commands.fetch import fetch as fetch_outputs

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    record = fetch_outputs(run_dir, card=project.settings.card if project else None, say=say)
    report_run(record, run_dir, as_json)
