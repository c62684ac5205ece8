"""Environment variables passed into runs, and keeping secret values out of every record.

A name is secret when marked with ``--secret NAME`` or when it matches one of
SECRET_PATTERNS. Secret values reach the container and nothing else: the record keeps the
name only, and the captured output has them masked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reprise.core.errors import UsageError

SECRET_PATTERNS = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*KEY*")
MASK = b"***"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIX = "REPRISE_"


@dataclass(frozen=True)
class RunEnv:
    values: Mapping[str, str] = field(default_factory=dict)  # every name -> value (container)
    secret_names: frozenset[str] = frozenset()

    @property
    def recorded(self) -> dict[str, str]:
        """What run.json may hold: the values of names that are not secret."""
        return {k: v for k, v in sorted(self.values.items()) if k not in self.secret_names}

    @property
    def secrets(self) -> list[str]:
        return sorted(self.secret_names & set(self.values))

    def secret_values(self) -> list[str]:
        return [self.values[n] for n in self.secrets if self.values[n]]


def is_secret(name: str, marked: Iterable[str] = ()) -> bool:
    upper = name.upper()
    return name in set(marked) or any(fnmatch.fnmatchcase(upper, p) for p in SECRET_PATTERNS)


def _check_name(name: str, source: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"{source}: {name!r} is not a valid environment variable name")
    if name.startswith(RESERVED_PREFIX):
        raise UsageError(
            f"{source}: {name} is reserved for reprise (REPRISE_* names are set by it)"
        )
    return name


def parse_env_file(text: str, *, source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        if "=" not in line:
            raise UsageError(f"{source}, line {number}: expected NAME=VALUE")
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[_check_name(name.strip(), f"{source}, line {number}")] = value
    return out


def resolve_env(
    flags: Iterable[str],
    env_files: Iterable[tuple[str, str]],
    secret_flags: Iterable[str],
    host: Mapping[str, str],
) -> RunEnv:
    """``--env NAME=VALUE`` / ``--env NAME`` (from the host), ``--env-file`` (each given as
    (its name, its text)), ``--secret NAME``."""
    values: dict[str, str] = {}
    for source, text in env_files:
        values.update(parse_env_file(text, source=source))
    for flag in flags:
        name, sep, value = flag.partition("=")
        _check_name(name, "--env")
        if not sep:
            if name not in host:
                raise UsageError(f"--env {name}: {name} is not set in this environment")
            value = host[name]
        values[name] = value
    marked = set()
    for name in secret_flags:
        _check_name(name, "--secret")
        marked.add(name)
        if name not in values:
            if name not in host:
                raise UsageError(f"--secret {name}: {name} is not set in this environment")
            values[name] = host[name]
    secret = frozenset(n for n in values if is_secret(n, marked))
    return RunEnv(values=dict(sorted(values.items())), secret_names=secret)


class Redactor:
    """Masks secret values in a byte stream, line by line (a value never spans a line)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self.pending = b""

    def _mask(self, data: bytes) -> bytes:
        for value in self.secrets:
            data = data.replace(value, MASK)
        return data

    def feed(self, chunk: bytes) -> bytes:
        if not self.secrets:
            return chunk
        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0 and len(data) < 1 << 16:
            self.pending = data
            return b""
        if cut < 0:
            cut = len(data) - 1
        self.pending = data[cut + 1 :]
        return self._mask(data[: cut + 1])

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self._mask(data)
