"""`reprise ci init`: the CI workflow that replays runs, rendered from a Jinja template."""

from __future__ import annotations

import re
from collections.abc import Sequence

from reprise import __version__
from reprise.core import names
from reprise.core.errors import InvalidNameError
from reprise.core.templating import render, template_text

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_CRON = re.compile(r"[0-9A-Za-z*,/-]{1,40}( [0-9A-Za-z*,/-]{1,40}){4}")
_INSTALL = re.compile(r"[A-Za-z0-9._\-\[\],=<>!~+@:/]{1,400}")


def _check(pattern: re.Pattern[str], value: str, option: str, example: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidNameError(
            f"{option} {value!r} cannot go into a workflow file",
            field=option,
            value=value,
            hint=f"write it like {example} (no spaces, quotes or line breaks)",
        )
    return value


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
    """The workflow's text; every value is checked first, so none can add YAML or shell."""
    for run in runs:
        names.run_id(run)
    for label in runner:
        _check(_LABEL, label, "--runner", "self-hosted,gpu")
    _check(_CRON, cron, "--cron", "'0 3 * * 1'")
    _check(_INSTALL, install_spec, "--install", "reprise==0.1.0")
    if registry is not None:
        names.registry(registry, "--registry")
    if any(c in runs_dir for c in "\n\r\0") or len(runs_dir) > 1000:
        raise InvalidNameError(
            f"--runs-dir {runs_dir!r} cannot go into a workflow file",
            field="--runs-dir",
            value=runs_dir,
        )
    if not 1 <= timeout_minutes <= 4320:
        raise InvalidNameError(
            f"--timeout-minutes {timeout_minutes} is out of range (1 to 4320)",
            field="--timeout-minutes",
            value=timeout_minutes,
        )
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
