"""`reprise show`: a run record, summarized for a person."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.display import printable, shell_command
from reprise.core.errors import UsageError
from reprise.core.progress import Say


def describe_run(
    record: dict[str, Any], run_dir: Path, directions: Mapping[str, str] | None = None
) -> list[str]:
    from reprise.commands.card import metrics_text
    from reprise.core.card import reproduction_line
    from reprise.core.metrics import parse_records, summarize

    image = record.get("image") or {}
    code = record.get("code") or {}
    lines = [
        f"run        {record['run_id']} ({record['experiment']})",
        f"dir        {run_dir}",
    ]
    if record.get("name"):
        lines.append(f"name       {record['name']}")
    if record.get("tags"):
        lines.append(f"tags       {' '.join(record['tags'])}")
    status = str(record["status"])
    if record.get("exit_code") is not None:
        status += f" (exit code {record['exit_code']})"
    if record.get("reason"):
        status += f": {printable(str(record['reason']))}"
    lines.append(f"status     {status}")
    lines.append(
        f"times      created {record.get('created_at')}, finished {record.get('finished_at') or '-'}"
        + (f", {record['duration_s']} s" if record.get("duration_s") is not None else "")
    )
    executor = record.get("executor") or {}
    if executor.get("kind") == "remote":
        fetched = "" if record.get("fetched", True) else "; outputs not fetched: reprise fetch"
        lines.append(f"ran on     {executor.get('host')}{fetched}")
    imported = record.get("imported") or {}
    if imported:
        carried = (
            f"{imported.get('outputs_checked', 0)} output files checked against its manifest"
            if imported.get("with_outputs")
            else "without its outputs"
        )
        if imported.get("with_outputs") and imported.get("outputs_absent"):
            carried += f", {imported['outputs_absent']} it names not carried"
        lines.append(
            f"imported   {imported.get('at')} from {printable(str(imported.get('bundle')))}"
            f" ({carried}): made elsewhere"
        )
    lines.append(f"command    {shell_command(record.get('command') or [])}")
    lines.append(f"image      {image.get('tag')} ({image.get('id')})")
    if image.get("repo_digest"):
        lines.append(f"pushed     {image['repo_digest']}")
    lines.append(f"base       {image.get('base_image')}")
    commit = f"{code.get('commit')}" + (f" ({code['branch']})" if code.get("branch") else "")
    if code.get("dirty"):
        commit += f", dirty: patch {code.get('patch_hash')}"
    lines.append(f"commit     {commit}")
    lines.append(
        f"seed       {record.get('seed')} ({record.get('seed_source')}), threads {record.get('threads')}"
    )
    overrides = " ".join(record["config"].get("overrides") or [])
    lines.append(f"config     {record['config']['hash']}" + (f"  {overrides}" if overrides else ""))
    for name, info in sorted((record.get("data") or {}).items()):
        lines.append(f"data       {name}: {info['hash']} ({info['files']} files)")
    resumes = record.get("resumes") or {}
    if resumes:
        lines.append(f"resumes    {resumes.get('run_id')} from {resumes.get('checkpoint')}")
    if record.get("determinism", "strict") != "strict":
        lines.append(f"determinism {record.get('determinism')}")
    if record.get("reproduces"):
        lines.append(f"reproduces {record['reproduces']}")
    for m in summarize(parse_records(metrics_text(run_dir)), directions):
        name = printable(m.name)  # the job chose it: no terminal escapes reach the screen
        lines.append(f"metric     {name}: final {m.final:.6g}, best {m.best:.6g} ({m.goal})")
    for r in record.get("reproductions") or []:
        lines.append(f"verdict    {reproduction_line(r)}")
    if (run_dir / keys.RUN_CARD).is_file():
        lines.append(f"card       {run_dir / keys.RUN_CARD}")
    for entry in record.get("notes") or []:
        lines.append(f"note       {entry.get('at') or '-'}  {printable(entry['text'])}")
    if record["status"] in ("failed", "lost", "interrupted"):
        lines += failure_lines(record, run_dir)
    return lines


SHOWN_TAIL = 15


def failure_lines(record: Mapping[str, Any], run_dir: Path) -> list[str]:
    """Why a run did not succeed: its hint, where FAILED and the log are, and the log's last
    lines (read without following a link, every control character escaped)."""
    from reprise.edges.runfiles import read_tail

    lines = []
    if record.get("hint"):
        lines.append(f"hint       {printable(str(record['hint']))}")
    if (run_dir / keys.RUN_FAILED).is_file():
        lines.append(f"failed     {run_dir / keys.RUN_FAILED}")
    lines.append(f"log        {run_dir / keys.RUN_LOG}")
    tail = read_tail(run_dir, keys.RUN_LOG, 64 << 10).splitlines()[-SHOWN_TAIL:]
    if tail:
        lines.append(f"--- last {len(tail)} lines of {keys.RUN_LOG} ---")
        lines += [printable(line) for line in tail]
    else:
        lines.append(f"({keys.RUN_LOG} is empty)")
    return lines


def list_runs(
    runs_dir: Path,
    *,
    experiment: str | None,
    status: str | None,
    limit: int | None,
    say: Say,
    tag: str | None = None,
    sweep: str | None = None,
) -> list[dict[str, Any]]:
    """`reprise ls`: every run's summary, newest first, after reconciling those still
    recorded as `running` with where they run. ``sweep``: a sweep id, its suffix or
    `latest`."""
    from reprise.edges.runindex import all_summaries, filter_runs, sweep_of

    summaries = all_summaries(runs_dir, warn=say)
    running = [Path(s["path"]) for s in summaries if s["status"] == "running"]
    if running:
        from reprise.commands.lifecycle import reconcile_all
        from reprise.execution import backend_for

        reconcile_all(backend_for, running, say)
        summaries = all_summaries(runs_dir)
    sweep_id = None
    if sweep is not None:
        sweep_id = sweep_of(summaries, sweep)
        if sweep_id is None:
            raise UsageError(
                f"no sweep {sweep!r} under {runs_dir}",
                hint="`reprise ls` shows each run's sweep; `latest` is the newest sweep",
            )
    return filter_runs(
        summaries, experiment=experiment, status=status, tag=tag, limit=limit, sweep=sweep_id
    )


def show_record(run_dir: Path, *, say: Say) -> dict[str, Any]:
    """`reprise show`: the run's record, reconciled first when it is still `running`."""
    from reprise.commands.lifecycle import reconcile_all
    from reprise.edges.runstore import read_record
    from reprise.execution import backend_for

    record = read_record(run_dir)
    if record["status"] == "running":
        reconcile_all(backend_for, [run_dir], say)
        record = read_record(run_dir)
    return record
