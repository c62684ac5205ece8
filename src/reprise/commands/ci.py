"""`reprise ci init`: write the CI workflow that replays runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprise.core.errors import UsageError
from reprise.core.workflow import render_workflow
from reprise.edges.runstore import atomic_write, find_run


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
) -> Path:
    """Render the replay workflow for ``runs`` (ids, prefixes or directories) into ``output``."""
    run_ids = [find_run(runs_dir, ref).name for ref in runs]
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
    return output
