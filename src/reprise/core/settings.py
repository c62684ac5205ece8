"""Project settings: ``[tool.reprise]`` in pyproject.toml, overridden by REPRISE_* variables.

Pure: :func:`load_settings` takes the pyproject data, an environment mapping and what it needs
to know of the host (whether a CA bundle exists). Relative paths are resolved against the
folder of the pyproject.toml that holds the section, and errors name that folder.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.core import names
from reprise.core.cardsettings import CardSettings, parse_card
from reprise.core.errors import InvalidNameError, ProjectError, SettingsError
from reprise.core.manifest import MAX_VOLATILE, MAX_VOLATILE_LENGTH
from reprise.core.metrics import parse_directions
from reprise.core.slurm import SlurmOptions, options_from_table
from reprise.core.workspace import PACKAGE_NAME

DEFAULT_BASE_IMAGE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
DEFAULT_RUNS_DIR = "runs"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONFIG_DELIVERIES = ("file", "hydra", "none")
DETERMINISM_MODES = ("strict", "warn", "off")
DEFAULT_FINGERPRINT_EVERY = 50
_PEP508 = "letters, digits, '.', '_' and '-', starting and ending with a letter or digit"


@dataclass(frozen=True)
class Prepare:
    """A step that runs with network before the hermetic run, into a content-hashed dataset
    mounted read-only at /workspace/data/<data>."""

    command: tuple[str, ...]
    data: str


@dataclass(frozen=True)
class Settings:
    """What ``[tool.reprise]`` says, resolved against the folder that holds it."""

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
    card: CardSettings = field(default_factory=CardSettings)
    package: str | None = None
    groups: tuple[str, ...] = ()
    default_groups: bool = True
    extras: tuple[str, ...] = ()
    volatile: tuple[str, ...] = ()
    config_delivery: str | None = None  # None: decided from the lock (hydra-core) and `config`
    prepare: Prepare | None = None
    host: str | None = None  # where runs execute; None: DOCKER_HOST or the current context
    determinism: str = "strict"
    fingerprint_every: int | None = DEFAULT_FINGERPRINT_EVERY  # None: off
    slurm: SlurmOptions | None = None  # [tool.reprise.slurm]: runs on Slurm (--slurm)
    metrics: Mapping[str, str] = field(default_factory=dict)  # name -> "min" | "max"


# key -> (environment variable, kind)
_KEYS: dict[str, tuple[str, str]] = {
    "command": ("REPRISE_COMMAND", "command"),
    "config": ("REPRISE_CONFIG_FILE", "path"),
    "experiment": ("REPRISE_EXPERIMENT", "str"),
    "base-image": ("REPRISE_BASE_IMAGE", "str"),
    "registry": ("REPRISE_REGISTRY", "str"),
    "gpus": ("REPRISE_GPUS", "gpus"),
    "ca-bundle": ("REPRISE_CA_BUNDLE", "ca"),
    "wheelhouse": ("REPRISE_WHEELHOUSE", "path"),
    "runs-dir": ("REPRISE_RUNS_DIR", "path"),
    "threads": ("REPRISE_THREADS", "int"),
    "data": ("", "data"),
    "card-template": ("REPRISE_CARD_TEMPLATE", "path"),
    "card": ("", "card"),
    "package": ("REPRISE_PACKAGE", "package"),
    "groups": ("", "list"),
    "default-groups": ("", "bool"),
    "extras": ("", "list"),
    "volatile": ("", "list"),
    "config-delivery": ("", "delivery"),
    "prepare": ("", "prepare"),
    "host": ("REPRISE_HOST", "host"),
    "determinism": ("REPRISE_DETERMINISM", "determinism"),
    "fingerprint-every": ("REPRISE_FINGERPRINT_EVERY", "fingerprint"),
    "slurm": ("", "slurm"),
    "metrics": ("", "metrics"),
}


def _where(root: Path) -> str:
    return f"(in {root / 'pyproject.toml'}; relative paths are resolved against {root})"


def _path(root: Path, key: str, value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise SettingsError(
            f"[tool.reprise] {key} must be a path string {_where(root)}", key=key, value=value
        )
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _command(key: str, value: object) -> tuple[str, ...]:
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


_GROUP = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")


def _strings(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(f"[tool.reprise] {key} must be a list of strings", key=key, value=value)
    if key == "volatile" and (
        len(value) > MAX_VOLATILE // 2 or any(len(v) > MAX_VOLATILE_LENGTH for v in value)
    ):
        # Half the record's bound: reprise adds patterns of its own (Hydra's log).
        raise SettingsError(
            f"[tool.reprise] volatile takes at most {MAX_VOLATILE // 2} patterns of at most "
            f"{MAX_VOLATILE_LENGTH} characters",
            key=key,
            value=value,
            hint='one pattern can cover many files, e.g. "outputs/logs/*"',
        )
    if key in ("groups", "extras"):
        for item in value:
            if not _GROUP.fullmatch(item):
                raise SettingsError(
                    f"[tool.reprise] {key}: {item!r} is not a group or extra name",
                    key=key,
                    value=item,
                )
    return tuple(value)


def _data(root: Path, key: str, value: object) -> dict[str, Path]:
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


def _prepare(key: str, value: object) -> Prepare:
    if not isinstance(value, dict) or set(value) - {"command", "data"} or "command" not in value:
        raise SettingsError(
            "[tool.reprise.prepare] takes command (and data, the dataset it makes)",
            key=key,
            value=value,
            hint='e.g. prepare = { command = "python download.py", data = "downloads" }',
        )
    data = value.get("data", "prepared")
    if not isinstance(data, str) or not names.DATASET.fullmatch(data):
        raise SettingsError(
            f"[tool.reprise.prepare] data {data!r} is not a dataset name", key=key, value=data
        )
    return Prepare(_command(f"{key}.command", value["command"]), data)


def _convert(root: Path, key: str, kind: str, value: object) -> object:
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise SettingsError(
                f"[tool.reprise] {key} must be a non-empty string", key=key, value=value
            )
        return value
    if kind == "path":
        return _path(root, key, value)
    if kind == "package":
        if not isinstance(value, str) or not PACKAGE_NAME.fullmatch(value):
            raise SettingsError(
                f"[tool.reprise] {key} {value!r} is not a package name",
                key=key,
                value=value,
                hint=f"name a workspace member as its pyproject.toml does: {_PEP508}",
            )
        return value
    if kind == "ca":
        if value is False or value in ("false", "none", "0"):
            return False
        return _path(root, key, value)
    if kind == "command":
        return _command(key, value)
    if kind == "int":
        try:
            number = int(str(value))
        except ValueError:
            raise SettingsError(f"{key} must be an integer", key=key, value=value) from None
        if number < 1:
            raise SettingsError(f"{key} must be at least 1", key=key, value=value)
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise SettingsError(f"[tool.reprise] {key} must be true or false", key=key, value=value)
        return value
    if kind == "list":
        return _strings(key, value)
    if kind == "gpus":
        return parse_gpus(str(value), key=key)
    if kind == "data":
        return _data(root, key, value)
    if kind == "determinism":
        if value not in DETERMINISM_MODES:
            raise SettingsError(
                f"[tool.reprise] {key} must be one of {', '.join(DETERMINISM_MODES)}",
                key=key,
                value=value,
                hint='"strict" (the default) raises on an operation without a deterministic '
                'implementation; "warn" records it; "off" leaves torch as it is',
            )
        return value
    if kind == "fingerprint":
        if value in (False, "off", "false", 0, "0"):
            return 0
        try:
            every = int(str(value))
        except ValueError:
            every = -1
        if isinstance(value, bool) or every < 1:
            raise SettingsError(
                f"[tool.reprise] {key} must be a positive number of optimizer steps, or off",
                key=key,
                value=value,
            )
        return every
    if kind == "slurm":
        return options_from_table(value)
    if kind == "host":
        if value in ("local", "slurm"):
            return value
        try:
            return names.host(value, f"[tool.reprise] {key}")
        except InvalidNameError as exc:
            raise SettingsError(exc.message, key=key, value=value, hint=exc.hint) from None
    if kind == "delivery":
        if value not in CONFIG_DELIVERIES:
            raise SettingsError(
                f"[tool.reprise] {key} must be one of {', '.join(CONFIG_DELIVERIES)}",
                key=key,
                value=value,
            )
        return value
    if kind == "prepare":
        return _prepare(key, value)
    if kind == "card":
        return value  # parsed with card-template, below
    if kind == "metrics":
        return parse_directions(key, value)
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


def default_ca_bundle(environ: Mapping[str, str], exists: Any) -> Path | None:
    """The host's trust store for image builds: SSL_CERT_FILE, else the system bundle."""
    for candidate in (environ.get("SSL_CERT_FILE"), SYSTEM_CA_BUNDLE):
        if candidate and exists(candidate):
            return Path(candidate)
    return None


def _name(root: Path, pyproject: Mapping[str, Any], package: str | None) -> str:
    """The project's name: [project] name, else (at a virtual workspace root) the member
    ``package`` names, already checked."""
    path = str(root / "pyproject.toml")
    project = pyproject.get("project") or {}
    name = project.get("name") if isinstance(project, dict) else None
    if isinstance(name, str) and name:
        if not PACKAGE_NAME.fullmatch(name):
            raise ProjectError(
                f"[project] name {name!r} in {path} is not a valid package name",
                path=path,
                hint=f"a PEP 508 name: {_PEP508}",
            )
        return name
    workspace = ((pyproject.get("tool") or {}).get("uv") or {}).get("workspace")
    if workspace is not None and package:
        return package  # a virtual workspace root names the member it runs
    raise ProjectError(
        "pyproject.toml has no [project] name",
        path=path,
        hint="add [project] with a name (reprise names images after it); at a virtual "
        'workspace root, set [tool.reprise] package = "<member>"',
    )


def load_settings(
    root: Path,
    pyproject: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    exists: Any = None,
) -> Settings:
    """Resolve the settings of the ``[tool.reprise]`` section of ``root``/pyproject.toml."""
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
    values: dict[str, Any] = {}
    for key, (env, kind) in _KEYS.items():
        raw: object = table.get(key)
        if env and environ.get(env):
            raw = environ[env]
        if raw is not None:
            values[key] = _convert(root, key, kind, raw)
    name = _name(root, pyproject, values.get("package"))
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
    ca = values.get("ca-bundle")
    if ca is None:
        ca = default_ca_bundle(environ, exists) if exists is not None else None
    return Settings(
        root=root,
        project_name=name,
        command=command,
        config=values.get("config"),
        experiment=experiment,
        base_image=str(values.get("base-image") or DEFAULT_BASE_IMAGE),
        registry=values.get("registry"),
        gpus=values.get("gpus"),
        ca_bundle=ca or None,
        wheelhouse=values.get("wheelhouse"),
        runs_dir=values.get("runs-dir") or root / DEFAULT_RUNS_DIR,
        threads=values.get("threads"),
        data=values.get("data") or {},
        card=parse_card(
            values.get("card"),
            values.get("card-template"),
            resolve=lambda key, value: _path(root, key, value),
        ),
        package=values.get("package"),
        groups=values.get("groups") or (),
        default_groups=values.get("default-groups", True),
        extras=values.get("extras") or (),
        volatile=values.get("volatile") or (),
        config_delivery=values.get("config-delivery"),
        prepare=values.get("prepare"),
        host=values.get("host"),
        determinism=values.get("determinism", "strict"),
        fingerprint_every=values.get("fingerprint-every", DEFAULT_FINGERPRINT_EVERY) or None,
        slurm=values.get("slurm"),
        metrics=values.get("metrics") or {},
    )
