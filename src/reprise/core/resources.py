"""Resource limits of a run (memory, /dev/shm, CPUs, processes): validated, recorded, restored.

Pure: sizes are parsed as `docker run --memory` reads them, before anything is started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reprise.core.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*")
DEFAULT_PIDS_LIMIT = 8192
MAX_PIDS_LIMIT = 4_194_304
MIN_MEMORY = 6 << 20  # the engine refuses less than 6 MiB


def parse_bytes(value: str) -> int:
    """'64m' -> 67108864, as `docker run --memory` reads it; ValueError when it is no size."""
    match = _SIZE.fullmatch(value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _size(option: str, value: str | None, minimum: int) -> str | None:
    if value is None:
        return None
    try:
        number = parse_bytes(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a size",
            hint=f"write a number with an optional unit b, k, m, g or t, e.g. {option} 16g",
        ) from None
    if number < minimum:
        raise UsageError(f"{option} {value!r} is too small (at least {minimum} bytes)")
    return value.strip()


@dataclass(frozen=True)
class Resources:
    """Limits passed to where the run executes, and recorded in run.json."""

    memory: str | None = None
    shm_size: str | None = None
    cpus: float | None = None
    pids_limit: int = DEFAULT_PIDS_LIMIT

    def to_record(self) -> dict[str, Any]:
        return {
            "memory": self.memory,
            "shm_size": self.shm_size,
            "cpus": self.cpus,
            "pids_limit": self.pids_limit,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any] | None) -> Resources:
        data = data or {}
        return validated_resources(
            memory=data.get("memory"),
            shm_size=data.get("shm_size"),
            cpus=data.get("cpus"),
            pids_limit=data.get("pids_limit") or DEFAULT_PIDS_LIMIT,
        )


def validated_resources(
    *,
    memory: str | None = None,
    shm_size: str | None = None,
    cpus: float | None = None,
    pids_limit: int | None = None,
) -> Resources:
    """Resources whose every value the engine will accept; UsageError (exit 2) otherwise."""
    if cpus is not None and (isinstance(cpus, bool) or not 0.01 <= float(cpus) <= 4096):
        raise UsageError(f"--cpus {cpus!r} is out of range (0.01 to 4096)")
    pids = DEFAULT_PIDS_LIMIT if pids_limit is None else pids_limit
    if isinstance(pids, bool) or not isinstance(pids, int) or not 16 <= pids <= MAX_PIDS_LIMIT:
        raise UsageError(f"--pids-limit {pids!r} is out of range (16 to {MAX_PIDS_LIMIT})")
    return Resources(
        memory=_size("--memory", memory, MIN_MEMORY),
        shm_size=_size("--shm-size", shm_size, 1),
        cpus=float(cpus) if cpus is not None else None,
        pids_limit=pids,
    )
