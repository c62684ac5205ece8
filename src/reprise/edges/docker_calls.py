"""What every call to a Docker engine shares: failures of the connection become EngineError,
and pull/push streams report each layer's progress."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reprise.core.errors import EngineError
from reprise.core.progress import Say


def report(line: Mapping[str, Any], progress: Say) -> None:
    """One layer's status from a pull or push stream (byte-level progress is left out)."""
    status = line.get("status")
    if status and line.get("id") and "progress" not in line:
        progress(f"{line['id']}: {status}")


def guarded(stream: Iterable[bytes], doing: str) -> Iterator[bytes]:
    with engine_errors(doing):
        yield from stream


@contextlib.contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Lost contact with the engine (restart, socket gone) becomes an EngineError."""
    import docker.errors
    import requests
    import urllib3.exceptions

    try:
        yield
    except EngineError:
        raise
    except docker.errors.NotFound:
        raise
    except (
        docker.errors.DockerException,
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        raise EngineError(f"lost contact with the engine while {doing}: {exc}") from exc
