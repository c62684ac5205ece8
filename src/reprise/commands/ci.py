"""`reprise ci init`: write the CI workflow that replays runs."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprise.core.errors import UsageError
from reprise.core.workflow import render_workflow
from reprise.edges.git import ignored_paths
from reprise.edges.runstore import atomic_write, find_run


@dataclass(frozen=True)
class Workflow:
    path: Path
    git_add: str  # the command that commits the workflow and the runs it replays
    ignored: tuple[str, ...]  # of those, what git ignores (runs/ usually): hence `add -f`


def _relative_to(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def write_workflow(
    *,
    runs: Sequence[str],
    runs_dir: Path,
    base: Path,
    output: Path,
    runner: str,
    cron: str,
    registry: str | None,
    install_spec: str,
    timeout_minutes: int,
    force: bool,
) -> Workflow:
    """Render the replay workflow for ``runs`` (ids, prefixes or directories) into ``output``,
    and the `git add` that commits it with those runs (``-f`` when git ignores any of them,
    as it ignores runs/ in a project `reprise init` set up)."""
    run_dirs = [find_run(runs_dir, ref) for ref in runs]
    run_ids = [d.name for d in run_dirs]
    if output.exists() and not force:
        raise UsageError(f"{output} exists", hint="pass --force to overwrite it")
    text = render_workflow(
        runs=run_ids,
        runs_dir=_relative_to(runs_dir.resolve(), base.resolve()),
        runner=[label.strip() for label in runner.split(",") if label.strip()],
        cron=cron,
        registry=registry,
        install_spec=install_spec,
        timeout_minutes=timeout_minutes,
    )
    atomic_write(output, text)
    here = Path.cwd()  # where the printed command is run
    paths = [_relative_to(p.resolve(), here.resolve()) for p in (output, *run_dirs)]
    ignored = tuple(ignored_paths(here, [p for p in paths if not p.startswith("/")]))
    command = shlex.join(["git", "add", *(["-f"] if ignored else []), *paths])
    return Workflow(output, command, ignored)
