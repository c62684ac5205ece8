"""Where a run executes: one interface (:class:`~reprise.execution.backend.Backend`), one
module per backend. The run lifecycle talks to the interface and never asks which backend it
has; today the local Docker engine is the only one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reprise.execution.backend import Backend

if TYPE_CHECKING:
    from reprise.edges.docker import Engine


def open_backend(
    environ: Mapping[str, str] | None = None, *, engine: Engine | None = None
) -> Backend:
    """The backend runs execute on: the Docker engine the environment points at (or
    ``engine``, already connected)."""
    from reprise.edges.docker import Engine
    from reprise.execution.local import LocalBackend

    return LocalBackend(engine or Engine.from_env(environ))
