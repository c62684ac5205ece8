"""`reprise reproduce`, `reprise diff`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reprise.cli.common import (
    RUNS_DIR_OPTION,
    complete_runs,
    complete_runs_or_files,
    emit_json,
    host_options,
    locate_run,
    maybe_project,
    runs_dir_of,
    say,
    scoped_ref,
)


def _data_flags(values: tuple[str, ...]) -> dict[str, Path]:
    from reprise.core import names
    from reprise.core.errors import UsageError

    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path:
            raise UsageError(
                f"--data {value!r} is not NAME=PATH", hint="e.g. --data train=/data/train"
            )
        out[names.dataset(name, "--data")] = Path(path)
    return out


@click.command()
@click.argument("runs", nargs=-1, required=True, shell_complete=complete_runs_or_files)
@click.option("--registry", default=None, help="Registry to pull the image from, by digest.")
@click.option(
    "--rebuild", is_flag=True, help="Rebuild the image when it cannot be had (a new artifact)."
)
@click.option(
    "--strict", is_flag=True, help="Refuse to run when the machine voids the bitwise guarantee."
)
@click.option("--allow-data-change", is_flag=True, help="Run even when a dataset's hash differs.")
@click.option(
    "--allow-prepare",
    is_flag=True,
    help="Run the project's prepare step (with network, the run's code and image) when its "
    "dataset is not here yet.",
)
@click.option(
    "--data",
    "data_flags",
    multiple=True,
    metavar="NAME=PATH",
    help="Where a dataset the run read is on this machine (default: the project's settings).",
)
@click.option(
    "--bisect",
    is_flag=True,
    help="When step fingerprints diverge, rerun twice up to that step (every step "
    "fingerprinted, from the nearest earlier checkpoint) to name the step and parameters.",
)
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
@RUNS_DIR_OPTION
@host_options
@click.pass_context
def reproduce(
    ctx: click.Context,
    runs: tuple[str, ...],
    registry: str | None,
    rebuild: bool,
    strict: bool,
    allow_data_change: bool,
    allow_prepare: bool,
    data_flags: tuple[str, ...],
    bisect: bool,
    junit_path: str | None,
    as_json: bool,
    runs_dir: str | None,
    host: str | None,
    context: str | None,
) -> None:
    """Rerun past runs from their records and prove the outputs bit-for-bit identical.

    RUN is a run id, a unique prefix or the suffix of one, a name, latest or latest~N, a run
    directory, or a bundle file (imported first). Exit codes: 0 identical, 5 diverged, 6
    nothing compared (the run has no output), 7 inconclusive (a manifest is incomplete and
    what both list agrees), 2 bad input, 3 could not reproduce (image unavailable, --strict
    mismatch), 4 project.

    \b
    Examples:
      reprise reproduce 20261123-1412
      reprise reproduce runs/spiral/20261123-141200-5f3a9c1e --registry 127.0.0.1:5000/team
      reprise reproduce RUN_A RUN_B --junit reprise-junit.xml   # in CI
      reprise reproduce 20261123-1412 --host ssh://me@other-gpu-box
      reprise reproduce 20261123-1412 --bisect   # the step and parameters that diverged first
    """
    from reprise.commands.reproduce import ReproduceOptions, reproduce_refs
    from reprise.core.junit import verdicts_to_junit
    from reprise.edges.runstore import atomic_write

    project = maybe_project(ctx)
    if runs_dir is None and project is None and runs and all(Path(r).is_file() for r in runs):
        runs_dir = "runs"  # a collaborator's bundle, with no project here: ./runs
        say("no project here: the bundle's run goes to ./runs (--runs-dir DIR to choose)")
    where = runs_dir_of(ctx, runs_dir)
    settings = project.settings if project else None
    options = ReproduceOptions(
        repo=project.root if project else None,
        registry=registry or (settings.registry if settings else None),
        rebuild=rebuild,
        strict=strict,
        data_paths={**(settings.data if settings else {}), **_data_flags(data_flags)},
        allow_data_change=allow_data_change,
        allow_prepare=allow_prepare,
        card=settings.card if settings else None,
        bisect=bisect,
        settings=settings,
    )
    verdicts = reproduce_refs(
        [scoped_ref(ctx, runs_dir, ref) for ref in runs],
        host=host,
        context=context,
        runs_dir=where,
        options=options,
        say=say,
        keep_going=len(runs) > 1 or bool(junit_path) or as_json,
        report=None if as_json else _report_verdict,
    )
    data = [v.to_dict() for v in verdicts]
    if junit_path:
        atomic_write(Path(junit_path), verdicts_to_junit(data))
    if as_json:
        emit_json(data[0] if len(data) == 1 else data)
    from reprise.core.errors import combined_exit

    ctx.exit(combined_exit([v.exit_code for v in verdicts]))


@click.command()
@click.argument("run", shell_complete=complete_runs)
@click.option("--registry", default=None, help="Registry to pull the image from, by digest.")
@click.option(
    "--data",
    "data_flags",
    multiple=True,
    metavar="NAME=PATH",
    help="Where a dataset the run read is on this machine (default: the project's settings).",
)
@click.option("--allow-data-change", is_flag=True, help="Run even when a dataset's hash differs.")
@click.option(
    "--detach", "-d", is_flag=True, help="Start, print the run id, return (see attach/wait)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the finished run.json on stdout.")
@RUNS_DIR_OPTION
@host_options
@click.pass_context
def resume(
    ctx: click.Context,
    run: str,
    registry: str | None,
    data_flags: tuple[str, ...],
    allow_data_change: bool,
    detach: bool,
    as_json: bool,
    runs_dir: str | None,
    host: str | None,
    context: str | None,
) -> None:
    """Continue a failed, interrupted or lost run from its checkpoints/last.pt.

    The new run has the same image, commit, config, seed, threads and command, starts with
    the interrupted run's checkpoints, outputs and metrics, and records what it resumes
    (reprise_runtime.Checkpoints.resume() loads the checkpoint). Reproducing the resumed run
    reruns it uninterrupted and compares. Exit code 1 unless the resumed run succeeded.

    \b
    Examples:
      reprise resume 20261123-1412
      reprise resume 20261123-1412 --host ssh://me@gpu-box --detach
    """
    from reprise.cli.common import report_run
    from reprise.commands.reproduce import ReproduceOptions
    from reprise.commands.resume import resume_run
    from reprise.edges.runstore import read_record

    run_dir = locate_run(ctx, runs_dir, run)
    project = maybe_project(ctx)
    settings = project.settings if project else None
    options = ReproduceOptions(
        repo=project.root if project else None,
        registry=registry or (settings.registry if settings else None),
        data_paths={**(settings.data if settings else {}), **_data_flags(data_flags)},
        allow_data_change=allow_data_change,
        card=settings.card if settings else None,
        settings=settings,
    )
    new_dir = resume_run(run_dir, options, host=host, context=context, say=say, detach=detach)
    record = read_record(new_dir)
    if detach:
        say(f"started; follow it with: reprise attach {record['run_id']}")
    report_run(record, new_dir, as_json)
    if record["status"] not in ("succeeded", "running"):
        ctx.exit(1)


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
    volatile = list(verdict.files.volatile) if verdict.files else []
    if volatile:
        shown = ", ".join(volatile[:5]) + (" ..." if len(volatile) > 5 else "")
        click.echo(f"volatile {len(volatile)} files recorded, not compared: {shown}")
    from reprise.cli.style import word

    if verdict.verdict == "identical":
        same = verdict.files.to_dict()["same"]
        click.echo(f"verdict  {word('identical')} ({same} files bit-for-bit)")
    elif verdict.verdict == "nothing-compared":
        click.echo(
            f"verdict  {word('nothing compared')}: the run produced no output to prove identical"
        )
    elif verdict.verdict == "inconclusive":
        click.echo(f"verdict  {word('inconclusive')}: a manifest is incomplete")
        for line in verdict.details:
            click.echo(f"  - {line}")
    elif verdict.verdict == "diverged":
        click.echo(f"verdict  {word('diverged')}")
        for line in verdict.details:
            click.echo(f"  - {line}")
        if verdict.bisect:
            click.echo(f"bisect   passes {', '.join(verdict.bisect['runs'])}")
    else:
        click.echo(f"verdict  {word('error')}: {verdict.error}")


@click.command()
@click.argument("run_a", shell_complete=complete_runs)
@click.argument("run_b", shell_complete=complete_runs)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON object.")
@click.option(
    "--verbose", "-v", is_flag=True, help="Every tensor that differs, not one line per file."
)
@RUNS_DIR_OPTION
@click.pass_context
def diff(
    ctx: click.Context,
    run_a: str,
    run_b: str,
    as_json: bool,
    verbose: bool,
    runs_dir: str | None,
) -> None:
    """Compare two runs: what went in (config, seed, code, image, environment), their
    metrics side by side, then their outputs (as reproduce compares them; a checkpoint in
    one line: how many tensors differ and by how much, every one with -v).

    Exit code 0 when the outputs are identical, 5 when they differ, 6 when neither run has
    an output to compare, 7 when a manifest is incomplete and what both list agrees.

    \b
    Examples:
      reprise diff 20261123-1412 20261123-1530
      reprise diff latest~1 latest -v
      reprise diff RUN_A RUN_B --json | jq .outputs.changed
    """
    from reprise.commands.diff import diff_runs

    a, b = locate_run(ctx, runs_dir, run_a), locate_run(ctx, runs_dir, run_b)
    from reprise.cli.style import spinner

    project = maybe_project(ctx)
    with spinner("comparing the runs", say) as step:
        result = diff_runs(
            a,
            b,
            say=step,
            verbose=verbose,
            directions=project.settings.metrics if project else None,
        )
    if as_json:
        emit_json(result)
    else:
        from reprise.cli.style import word

        for line in result["summary"]:
            if line.startswith("outputs  "):  # identical / differ, coloured on a terminal
                verdict = line[9:].split(" ", 1)[0].rstrip(":")
                colour = {
                    "identical": "identical",
                    "differ": "diverged",
                    "inconclusive": "inconclusive",
                }.get(verdict)
                line = (
                    "outputs  "
                    + (word(colour).replace(colour, verdict) if colour else verdict)
                    + line[9 + len(verdict) :]
                )
            click.echo(line)
    outputs = result["outputs"]
    from reprise.core.errors import VERDICT_EXIT

    ctx.exit(VERDICT_EXIT[str(outputs["outcome"])])
