"""`reprise run --slurm`: the run's Slurm options, from ``[tool.reprise.slurm]`` and the flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reprise.core.errors import UsageError
from reprise.core.settings import Settings
from reprise.core.slurm import SlurmOptions
from reprise.execution import Target, is_slurm, slurm_target


@dataclass(frozen=True)
class SlurmRequest:
    """`reprise run --slurm` and its flags (None: not given; [tool.reprise.slurm] decides)."""

    nodes: int | None = None
    gpus_per_node: int | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    explicit: bool = True  # --slurm itself was given (else only some of its flags)
    requeue: bool | None = None

    def flags(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "explicit"}


def slurm_target_for(
    target: Target,
    request: SlurmRequest | None,
    settings: Settings,
    *,
    gpus: str | None,
    named: bool,
) -> Target:
    """The target with the run's Slurm options (settings, then flags) when it goes to Slurm;
    ``named``: --host or --context was given (it must not name another engine)."""
    if request is not None and named and not is_slurm(target.host):
        raise UsageError("--slurm and --host/--context both say where the run goes: give one")
    if request is not None and not request.explicit and not is_slurm(target.host):
        given = [f"--{k.replace('_', '-')}" for k, v in request.flags().items() if v is not None]
        raise UsageError(f"{', '.join(given)}: for runs on Slurm: add --slurm")
    if not (request is not None or is_slurm(target.host)):
        return target
    if gpus is not None:
        raise UsageError("--gpus is for one machine's engine: on Slurm, say --gpus-per-node")
    options = (settings.slurm or SlurmOptions()).with_flags(**(request or SlurmRequest()).flags())
    return slurm_target(options, "--slurm" if request is not None else target.origin)
