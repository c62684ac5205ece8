"""`reprise ci init`: the CI workflow that replays runs, rendered from a Jinja template."""

from __future__ import annotations

from collections.abc import Sequence

from reprise import __version__
from reprise.templating import render, template_text


def render_workflow(
    *,
    runs: Sequence[str],
    runs_dir: str,
    runner: Sequence[str],
    cron: str,
    registry: str | None,
    install_spec: str,
    timeout_minutes: int,
) -> str:
    return render(
        template_text("ci/github-replay.yml.j2"),
        {
            "reprise_version": __version__,
            "runs": sorted(runs),
            "runs_dir": runs_dir,
            "runner": list(runner),
            "cron": cron,
            "registry": registry,
            "install_spec": install_spec,
            "timeout_minutes": timeout_minutes,
        },
    )
