"""Where a run executes: one interface (:class:`~reprise.execution.backend.Backend`), one
module per backend (``local``: this machine's engine, by bind mount; ``remote``: an engine on
another machine, by streaming). The run lifecycle talks to the interface and never asks which
backend it has; this module only picks one.

Which engine runs a job, first that is set: ``--host``, ``--context``, ``host`` in
``[tool.reprise]`` (or ``REPRISE_HOST``), ``DOCKER_HOST``, ``DOCKER_CONTEXT``, the Docker CLI's
current context. A ``unix://`` socket (or none) is this machine's engine; anything else
(``ssh://``, ``tcp://``) is a remote one; ``slurm`` (or ``slurm://CLUSTER``) is the Slurm
cluster this machine's Slurm client talks to (``reprise run --slurm``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprise.core import names
from reprise.core.errors import EngineError, InvalidNameError, UsageError
from reprise.execution.backend import Backend

if TYPE_CHECKING:
    from reprise.edges.docker import Engine


@dataclass(frozen=True)
class Target:
    """An engine to run on: ``host`` None is the one the docker environment points at."""

    host: str | None = None
    tls: Any = None
    origin: str = "default"
    slurm: Any = None  # a Slurm target's SlurmOptions (None: the defaults, or a rerun's record's)

    @property
    def remote(self) -> bool:
        return self.host is not None and not self.host.startswith("unix://")


def _context(name: str) -> Target:
    import docker.context
    import docker.errors

    try:
        ctx = docker.context.ContextAPI.get_context(name)
    except docker.errors.DockerException as exc:
        raise UsageError(f"docker context {name!r} cannot be read: {exc}") from None
    if ctx is None:
        raise UsageError(
            f"there is no docker context {name!r}",
            hint="list them with `docker context ls`, or pass --host ssh://user@box",
        )
    host = ctx.Host
    return Target(
        names.host(host, f"context {name}") if host else None, ctx.TLSConfig, f"context {name}"
    )


def resolve_target(
    *,
    host: str | None = None,
    context: str | None = None,
    setting: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """The engine runs go to (see the module's docstring for the order)."""
    env = os.environ if environ is None else environ
    if host is not None and context is not None:
        raise UsageError("--host and --context name the engine twice: give one")
    if is_slurm(host):
        return slurm_target(None, "--host")
    if host is None and context is None and is_slurm(setting):
        return slurm_target(None, "host setting")
    try:
        if host is not None:
            return Target(None if host == "local" else names.host(host, "--host"), origin="--host")
        if context is not None:
            return _context(context)
        if setting is not None:
            return Target(None if setting == "local" else setting, origin="host setting")
    except InvalidNameError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    docker_host = env.get("DOCKER_HOST")
    if docker_host:  # like --host: a remote engine gets its inputs streamed, not bind-mounted
        if docker_host.startswith("unix://"):
            return Target(origin="DOCKER_HOST")
        try:
            return Target(names.host(docker_host, "DOCKER_HOST"), origin="DOCKER_HOST")
        except InvalidNameError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
    name = env.get("DOCKER_CONTEXT")
    if name is None:
        from docker.context.config import get_current_context_name

        current = get_current_context_name()
        name = None if current == "default" else current
    if name and name != "default":
        return _context(name)
    return Target()


# --- Slurm (execution/slurm.py) ----------------------------------------------------------
SLURM = "slurm"


def is_slurm(host: str | None) -> bool:
    return host is not None and (host == SLURM or host.startswith(f"{SLURM}://"))


def slurm_target(options: Any, origin: str = "--slurm") -> Target:
    return Target(SLURM, origin=origin, slurm=options)


def _open_slurm(options: Any, environ: Mapping[str, str] | None, engine: Engine | None) -> Backend:
    from reprise.edges.docker import Engine
    from reprise.execution.slurm import SlurmBackend

    return SlurmBackend(lambda: engine or Engine.from_env(environ), options)


# -------------------------------------------------------------------------------------------
def open_backend(
    target: Target | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    engine: Engine | None = None,
) -> Backend:
    """The backend for ``target`` (the docker environment's engine when None), connected."""
    from reprise.edges.docker import Engine
    from reprise.execution.local import LocalBackend

    if target is not None and is_slurm(target.host):
        return _open_slurm(target.slurm, environ, engine)
    if target is None or target.host is None:
        return LocalBackend(engine or Engine.from_env(environ))
    if not target.remote:
        return LocalBackend(engine or Engine.connect(target.host))
    from reprise.execution.remote import RemoteBackend

    host = target.host
    return RemoteBackend(
        engine or Engine.connect(host, tls=target.tls), host, lambda: Engine.from_env(environ)
    )


def backend_for(record: Mapping[str, Any]) -> Backend:
    """The backend a recorded run executed on (runs recorded before remote hosts: local)."""
    executor = record.get("executor") or {}
    if executor.get("kind") == SLURM:
        from reprise.core.slurm import options_from_record

        return _open_slurm(options_from_record(executor.get("slurm")), None, None)
    if executor.get("kind") == "remote":
        host = executor.get("host")
        if not isinstance(host, str):
            raise EngineError("the record names a remote executor without a host")
        return open_backend(Target(names.host(host, "record executor.host"), origin="record"))
    return open_backend()


def rerun_backend(record: Mapping[str, Any], chosen: Backend, *, named: bool) -> Backend:
    """Where a recorded run reruns: ``chosen`` (--host, --context, the settings), except that
    a run laid out over a cluster's nodes (Slurm) goes back to its cluster unless one was named:
    its ranks need the same layout, which one engine does not give."""
    if not named and (record.get("executor") or {}).get("kind") == SLURM:
        return backend_for(record)
    return chosen
