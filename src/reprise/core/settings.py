"""Project settings: ``[tool.reprise]`` in pyproject.toml, overridden by REPRISE_* variables.

Pure: :func:`load_settings` takes the pyproject text and an environment mapping.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.core import names
from reprise.core.errors import ProjectError, SettingsError

DEFAULT_BASE_IMAGE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
DEFAULT_RUNS_DIR = "runs"


@dataclass(frozen=True)
class Settings:
    """What ``[tool.reprise]`` says, resolved against the project root."""

    root: Path
    project_name: str
    command: tuple[str, ...]
    config: Path | None
    experiment: str
    base_image: str
    registry: str | None
    gpus: str | None
    ca_bundle: Path | None
    wheelhouse: Path | None
    runs_dir: Path
    threads: int | None
    data: Mapping[str, Path] = field(default_factory=dict)
    card_template: Path | None = None


# key -> (environment variable, kind)
_KEYS: dict[str, tuple[str, str]] = {
    "command": ("REPRISE_COMMAND", "command"),
    "config": ("REPRISE_CONFIG_FILE", "path"),
    "experiment": ("REPRISE_EXPERIMENT", "str"),
    "base-image": ("REPRISE_BASE_IMAGE", "str"),
    "registry": ("REPRISE_REGISTRY", "str"),
    "gpus": ("REPRISE_GPUS", "gpus"),
    "ca-bundle": ("REPRISE_CA_BUNDLE", "path"),
    "wheelhouse": ("REPRISE_WHEELHOUSE", "path"),
    "runs-dir": ("REPRISE_RUNS_DIR", "path"),
    "threads": ("REPRISE_THREADS", "int"),
    "data": ("", "data"),
    "card-template": ("REPRISE_CARD_TEMPLATE", "path"),
}

INIT_SECTION = """\
[tool.reprise]
# The training command, run in /workspace/code (your code at the commit, read-only).
command = "python train.py"
# The run config (YAML). Frozen into each run; its path is $REPRISE_CONFIG in the container.
config = "config.yaml"
# Runs are grouped by experiment: <runs-dir>/<experiment>/<run id>/.
# experiment = "{name}"
# The base image. A tag is resolved to its digest at build time; pin a digest to be exact.
base-image = "{base}"
# Registry for `reprise build --push` / `reprise push` (REPRISE_REGISTRY overrides).
# registry = "registry.example.com/team"
# GPUs for each run: "all", or a count.
# gpus = "all"
# Extra CA bundle for image builds behind a TLS-intercepting proxy (build time only).
# ca-bundle = "/etc/ssl/certs/ca-certificates.crt"
# A folder of wheels that uv.lock refers to by absolute path (find-links); build time only.
# wheelhouse = "/opt/wheels"
# Where run directories go (relative to this file).
runs-dir = "runs"
# CPU threads for BLAS/OpenMP/torch; recorded, and restored on reproduce. Default: all cores.
# threads = 1
# Datasets, each mounted read-only at /workspace/data/<name> and content-hashed.
# data = {{ train = "data/train" }}
"""


def render_init_section(project_name: str) -> str:
    return INIT_SECTION.format(name=project_name, base=DEFAULT_BASE_IMAGE)


def _path(root: Path, key: str, value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise SettingsError(f"[tool.reprise] {key} must be a path string", key=key, value=value)
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _convert(root: Path, key: str, kind: str, value: object) -> object:
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise SettingsError(
                f"[tool.reprise] {key} must be a non-empty string", key=key, value=value
            )
        return value
    if kind == "path":
        return _path(root, key, value)
    if kind == "command":
        if isinstance(value, str):
            try:
                parts = shlex.split(value)
            except ValueError as exc:
                raise SettingsError(
                    f"[tool.reprise] {key} {value!r} cannot be split into words: {exc}",
                    key=key,
                    value=value,
                    hint="close the quote, or write the command as a list of strings",
                ) from None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            parts = list(value)
        else:
            raise SettingsError(
                f"[tool.reprise] {key} must be a string or a list of strings", key=key, value=value
            )
        if not parts:
            raise SettingsError(f"[tool.reprise] {key} is empty", key=key, value=value)
        return tuple(parts)
    if kind == "int":
        try:
            number = int(str(value))
        except ValueError:
            raise SettingsError(f"{key} must be an integer", key=key, value=value) from None
        if number < 1:
            raise SettingsError(f"{key} must be at least 1", key=key, value=value)
        return number
    if kind == "gpus":
        return parse_gpus(str(value), key=key)
    if kind == "data":
        if not isinstance(value, dict):
            raise SettingsError(
                "[tool.reprise] data must be a table of name = path", key=key, value=value
            )
        out: dict[str, Path] = {}
        for name, path in sorted(value.items()):
            if not names.DATASET.fullmatch(name):
                raise SettingsError(
                    f"dataset name {name!r} may hold only letters, digits, '-' and '_'",
                    key=f"data.{name}",
                    value=name,
                )
            out[name] = _path(root, f"data.{name}", path)
        return out
    raise AssertionError(kind)


def parse_gpus(value: str, *, key: str = "gpus") -> str | None:
    value = value.strip()
    if value in ("", "none", "0"):
        return None
    if value == "all" or (value.isdigit() and int(value) > 0):
        return value
    raise SettingsError(
        f"{key} must be 'all' or a positive count, not {value!r}", key=key, value=value
    )


def load_settings(root: Path, pyproject: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Resolve the settings of the project at ``root``."""
    project = pyproject.get("project") or {}
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise ProjectError(
            "pyproject.toml has no [project] name",
            path=str(root / "pyproject.toml"),
            hint="add [project] with a name; reprise names images after it",
        )
    table = (pyproject.get("tool") or {}).get("reprise") or {}
    if not isinstance(table, dict):
        raise SettingsError("[tool.reprise] must be a table", key="tool.reprise", value=table)
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise SettingsError(
            f"unknown [tool.reprise] key(s): {', '.join(unknown)}",
            key=unknown[0],
            hint=f"known keys: {', '.join(sorted(_KEYS))}",
        )
    values: dict[str, object] = {}
    for key, (env, kind) in _KEYS.items():
        raw: object = table.get(key)
        if env and environ.get(env):
            raw = environ[env]
        if raw is not None:
            values[key] = _convert(root, key, kind, raw)
    command = values.get("command")
    if command is None:
        raise SettingsError(
            "[tool.reprise] command is not set",
            key="command",
            hint='add command = "python train.py" under [tool.reprise] (reprise init writes one)',
        )
    experiment = str(values.get("experiment") or name)
    if not names.EXPERIMENT.fullmatch(experiment):
        raise SettingsError(
            f"experiment {experiment!r} is not a valid experiment name",
            key="experiment",
            value=experiment,
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return Settings(
        root=root,
        project_name=name,
        command=command,  # type: ignore[arg-type]
        config=values.get("config"),  # type: ignore[arg-type]
        experiment=experiment,
        base_image=str(values.get("base-image") or DEFAULT_BASE_IMAGE),
        registry=values.get("registry"),  # type: ignore[arg-type]
        gpus=values.get("gpus"),  # type: ignore[arg-type]
        ca_bundle=values.get("ca-bundle"),  # type: ignore[arg-type]
        wheelhouse=values.get("wheelhouse"),  # type: ignore[arg-type]
        runs_dir=values.get("runs-dir") or root / DEFAULT_RUNS_DIR,  # type: ignore[arg-type]
        threads=values.get("threads"),  # type: ignore[arg-type]
        data=values.get("data") or {},  # type: ignore[arg-type]
        card_template=values.get("card-template"),  # type: ignore[arg-type]
    )
