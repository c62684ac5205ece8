"""What a run is made of, checked before anything is written: the config with its overrides,
the seed, the code at its commit, the datasets, the threads; and the record it starts with."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise import __version__
from reprise.commands.build import RunImage
from reprise.commands.card import check_template
from reprise.core import keys, names
from reprise.core.cardsettings import CardSettings
from reprise.core.config import (
    apply_overrides,
    config_hash,
    dump_config,
    load_config_text,
    parse_override,
)
from reprise.core.envvars import RunEnv
from reprise.core.errors import ConfigError, UsageError
from reprise.core.resources import Resources
from reprise.core.settings import Settings
from reprise.core.workspace import LockedPackage, parse_lock
from reprise.edges.datasets import Dataset, hash_datasets
from reprise.edges.git import CodeState, code_state, require_clean
from reprise.edges.project import Project
from reprise.edges.runstore import check_runs_dir, code_cache, utc_now

MAX_SEED = 2**32 - 1
# Hydra apps: the run directory Hydra writes (.hydra/, its log) at a fixed place in the
# outputs, so that two runs name the same files; its log is timestamped, so not compared.
HYDRA_RUN_DIR = f"{keys.CONTAINER_OUTPUTS}/hydra"
HYDRA_COMPOSED = "outputs/hydra/.hydra/config.yaml"
HYDRA_VOLATILE = ("outputs/hydra/*.log",)
HYDRA_PLACEHOLDER = f"# composed by Hydra when the job starts: {HYDRA_COMPOSED}\n"
HYDRA_OVERRIDE = re.compile(r"(?:\+\+|\+|~)?[A-Za-z_][\w.\-/@]*(?:=.*)?", re.DOTALL)


@dataclass(frozen=True)
class RunInputs:
    """Everything a run is made of, validated, before anything is written."""

    runs_dir: Path
    project_name: str
    experiment: str
    command: tuple[str, ...]
    config_text: str
    config_source: str | None
    overrides: tuple[str, ...]
    seed: int
    seed_source: str
    threads: int
    code: CodeState
    gpus: str | None
    env: RunEnv = field(default_factory=RunEnv)
    resources: Resources = field(default_factory=Resources)
    reproduces: str | None = None
    data: Mapping[str, Dataset] = field(default_factory=dict)
    card: CardSettings | None = None
    workdir: str = ""  # the project's folder within the code (a workspace member's)
    delivery: str = "file"  # how the config reaches the job: file, hydra, none
    volatile: tuple[str, ...] = ()  # output paths recorded but not compared
    determinism: str = "strict"  # torch's deterministic algorithms: strict, warn, off
    fingerprint_every: int | None = None  # step fingerprints every K optimizer steps; None: off
    resumes: Mapping[str, Any] | None = None  # the interrupted run this one continues
    resume_dir: Path | None = None  # its run directory, whose job folders this run starts with
    bisect: Mapping[str, Any] | None = None  # a bisect pass: the run it narrows, where it stops
    name: str | None = None  # what a person calls the run (`reprise run --name`), checked
    sweep: Mapping[str, Any] | None = None  # {id, index, size} for a run of `reprise run -m`


def check_seed(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(
            f"{source} must be an integer from 0 to {MAX_SEED}, not {value!r}",
            key="seed",
            hint="NumPy and torch take 32-bit seeds: pick one in that range",
        )
    return value


def resolve_seed(config: dict[str, Any], flag: int | None) -> tuple[int, str, dict[str, Any]]:
    """The seed: --seed, else the config's ``seed``, else a fresh one. Keeps the config in step."""
    if flag is not None:
        check_seed(flag, "--seed")
        if "seed" in config:
            config = {**config, "seed": flag}
        return flag, "flag", config
    value = config.get("seed")
    if value is not None:
        return check_seed(value, "config key 'seed'"), "config", config
    import secrets

    return secrets.randbelow(2**31), "generated", config


def config_delivery(settings: Settings, lock: Mapping[str, LockedPackage]) -> str:
    """How the config reaches the job: the setting, else a reprise config file when one is
    set, else Hydra's own composition when hydra-core is in the lock, else no config."""
    if settings.config_delivery:
        return settings.config_delivery
    if settings.config is not None:
        return "file"
    return "hydra" if "hydra-core" in lock else "none"


def _file_config(
    settings: Settings, overrides: Sequence[str], seed: int | None
) -> tuple[str, int, str]:
    """(frozen YAML, seed, where the seed came from) of a reprise config file + overrides."""
    config: dict[str, Any] = {}
    if settings.config is not None:
        try:
            text = settings.config.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {settings.config} does not exist (resolved against {settings.root})",
                hint="create it, or change [tool.reprise] config",
            ) from None
        config = load_config_text(text, source=str(settings.config))
    elif overrides:
        raise ConfigError(
            "overrides were given, but this project has no config to apply them to",
            hint="set [tool.reprise] config to a YAML file (its path reaches the job as "
            "$REPRISE_CONFIG), or make it a Hydra app (hydra-core in uv.lock)",
        )
    config = apply_overrides(config, [parse_override(o) for o in overrides])
    seed_value, seed_source, config = resolve_seed(config, seed)
    return dump_config(config), seed_value, seed_source


def hydra_arguments(overrides: Sequence[str]) -> list[str]:
    """The overrides as Hydra takes them (checked for its grammar's shape; Hydra checks the
    keys), and its run directory at a fixed place in the run's outputs."""
    for override in overrides:
        if not HYDRA_OVERRIDE.fullmatch(override):
            raise ConfigError(
                f"override {override!r} is not in Hydra's grammar",
                hint="write key=value, +key=value, ++key=value or ~key (e.g. optim.lr=0.5)",
            )
    return [*overrides, f"hydra.run.dir={HYDRA_RUN_DIR}"]


def prepare_run(
    project: Project,
    *,
    overrides: Sequence[str],
    seed: int | None,
    command: Sequence[str] | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    env: RunEnv | None = None,
    resources: Resources | None = None,
    lock: bytes | None = None,
    determinism: str | None = None,
    name: str | None = None,
) -> RunInputs:
    settings = project.settings
    if name is not None:
        names.run_name(name, "--name")
    check_runs_dir(settings.runs_dir)
    check_template(settings.card)  # a broken card template fails now, not after training
    locked = parse_lock(lock if lock is not None else project.lock_path.read_bytes())
    delivery = config_delivery(settings, locked)
    run_command = tuple(command) if command else settings.command
    volatile = settings.volatile
    if delivery == "hydra":
        run_command = (*run_command, *hydra_arguments(overrides))
        config_text, seed_source = HYDRA_PLACEHOLDER, "flag" if seed is not None else "generated"
        seed_value = resolve_seed({}, seed)[0]
        volatile = (*volatile, *HYDRA_VOLATILE)
    else:
        config_text, seed_value, seed_source = _file_config(settings, overrides, seed)
    state = code_state(project.code_root, exclude=(settings.runs_dir,))
    require_clean(state, allow_dirty=allow_dirty)
    data = hash_datasets(settings.data)
    n_threads = threads or settings.threads or os.cpu_count() or 1
    return RunInputs(
        runs_dir=settings.runs_dir,
        project_name=settings.project_name,
        experiment=settings.experiment,
        command=run_command,
        config_text=config_text,
        config_source="hydra"
        if delivery == "hydra"
        else (_relative(settings.config, project.root) if settings.config else None),
        overrides=tuple(overrides),
        seed=seed_value,
        seed_source=seed_source,
        threads=n_threads,
        code=state,
        gpus=gpus if gpus is not None else settings.gpus,
        data=data,
        card=settings.card,
        workdir=project.workdir,
        delivery=delivery,
        volatile=volatile,
        env=env or RunEnv(),
        resources=resources or Resources(),
        determinism=determinism or settings.determinism,
        fingerprint_every=settings.fingerprint_every,
        name=name,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def code_dir(runs_dir: Path, code: CodeState) -> Path:
    """Where the code at a commit (plus a patch) is kept for runs; every part validated."""
    return code_cache(runs_dir, code.commit, code.subdir, code.patch_hash)


def run_environment(inputs: RunInputs, run_id: str) -> dict[str, str]:
    env = {
        keys.ENV_SEED: str(inputs.seed),
        keys.ENV_CONFIG: keys.CONTAINER_CONFIG,
        keys.ENV_OUTPUTS: keys.CONTAINER_OUTPUTS,
        keys.ENV_RUN_DIR: keys.CONTAINER_RUN,
        keys.ENV_RUN_ID: run_id,
        keys.ENV_THREADS: str(inputs.threads),
        keys.ENV_RUNTIME_RECORD: keys.CONTAINER_RUNTIME_RECORD,
    }
    for name in keys.THREAD_ENV_VARS:
        env[name] = str(inputs.threads)
    env[keys.ENV_DETERMINISM] = inputs.determinism
    env[keys.ENV_FINGERPRINT_EVERY] = str(inputs.fingerprint_every or "off")
    if inputs.resumes is not None:
        env[keys.ENV_RESUME] = "1"
    if inputs.bisect is not None:
        env[keys.ENV_STOP_AFTER_STEP] = str(inputs.bisect["stop_after_step"])
    if inputs.delivery != "file":  # no reprise config: Hydra composes its own, or there is none
        del env[keys.ENV_CONFIG]
    return dict(sorted(env.items()))


def initial_record(inputs: RunInputs, image: RunImage, run_id: str) -> dict[str, Any]:
    code = inputs.code
    return {
        "schema": keys.RUN_SCHEMA_VERSION,
        "reprise_version": __version__,
        "run_id": run_id,
        "experiment": inputs.experiment,
        "project": inputs.project_name,
        "status": "running",
        "exit_code": None,
        "reason": None,
        "created_at": utc_now(),
        "started_at": None,
        "finished_at": None,
        "duration_s": None,
        "command": list(inputs.command),
        "reproduces": inputs.reproduces,
        "image": dict(image.record),
        "code": {
            "remote": code.remote,
            "commit": code.commit,
            "branch": code.branch,
            "subdir": code.subdir,
            "dirty": code.dirty,
            "patch": keys.RUN_PATCH if code.dirty else None,
            "patch_hash": code.patch_hash,
            "workdir": inputs.workdir,
        },
        "config": {
            "source": inputs.config_source,
            "delivery": inputs.delivery,
            "overrides": list(inputs.overrides),
            "hash": config_hash(inputs.config_text),
        },
        "volatile": list(inputs.volatile),
        "seed": inputs.seed,
        "seed_source": inputs.seed_source,
        "determinism": inputs.determinism,
        "fingerprint_every": inputs.fingerprint_every,
        "resumes": dict(inputs.resumes) if inputs.resumes is not None else None,
        "bisect": dict(inputs.bisect) if inputs.bisect is not None else None,
        "data": {name: d.to_record() for name, d in sorted(inputs.data.items())},
        "threads": inputs.threads,
        "gpus": inputs.gpus,
        "environment": {
            "image": dict(image.env),
            "run": run_environment(inputs, run_id),
            "user": inputs.env.recorded,
            "secrets": inputs.env.secrets,
        },
        "resources": inputs.resources.to_record(),
        "container": None,
        "host": None,  # filled in while the container starts
        "runtime": None,
        "manifest": None,
        **({"name": inputs.name} if inputs.name else {}),
        **({"sweep": dict(inputs.sweep)} if inputs.sweep else {}),
    }


def recorded_env(record: dict[str, Any], host: Mapping[str, str]) -> RunEnv:
    """The run's own variables again; secret ones (never recorded) from this environment."""
    environment = record.get("environment") or {}
    values = dict(environment.get("user") or {})
    secret = list(environment.get("secrets") or [])
    missing = [n for n in secret if n not in host]
    if missing:
        raise UsageError(
            f"the run was given secret {', '.join(missing)}, whose value is never recorded",
            hint="set it in this environment to reproduce the run",
        )
    values.update({n: host[n] for n in secret})
    return RunEnv(values=values, secret_names=frozenset(secret))
