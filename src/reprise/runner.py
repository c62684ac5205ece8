"""`reprise run`: validate every input first, then make the run directory, run the container,
stream its output, and finish the record (status, exit code, manifest) whatever happens."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprise import __version__, keys
from reprise.builder import RunImage
from reprise.config import (
    apply_overrides,
    config_hash,
    dump_config,
    load_config_text,
    parse_override,
)
from reprise.datasets import Dataset, hash_datasets, mount_target
from reprise.engine import ContainerSpec, Engine, Mount
from reprise.envvars import RunEnv
from reprise.errors import ConfigError, RepriseError, SettingsError, UsageError
from reprise.gitrepo import CodeState, code_state, export_code, require_clean
from reprise.hostinfo import describe_host
from reprise.lifecycle import finalize, follow, run_lock, storage_errors
from reprise.project import Project
from reprise.runstore import (
    create_run_dir,
    new_run_id,
    read_record,
    utc_now,
    write_record,
)
from reprise.settings import parse_gpus
from reprise.templating import warm_up

Say = Callable[[str], None]
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Resources:
    """Limits passed to the engine as they are, and recorded."""

    memory: str | None = None
    shm_size: str | None = None
    cpus: float | None = None


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
    resources: Resources = field(default_factory=lambda: Resources())
    reproduces: str | None = None
    data: Mapping[str, Dataset] = field(default_factory=dict)
    card_template: Path | None = None


def resolve_seed(config: dict[str, Any], flag: int | None) -> tuple[int, str, dict[str, Any]]:
    """The seed: --seed, else the config's ``seed``, else a fresh one. Keeps the config in step."""
    if flag is not None:
        if "seed" in config:
            config = {**config, "seed": flag}
        return flag, "flag", config
    value = config.get("seed")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key 'seed' must be an integer, not {value!r}", key="seed")
        return value, "config", config
    import secrets

    return secrets.randbelow(2**31), "generated", config


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
) -> RunInputs:
    settings = project.settings
    if settings.config is not None:
        try:
            text = settings.config.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {settings.config} does not exist",
                hint="create it, or change [tool.reprise] config",
            ) from None
        config = load_config_text(text, source=str(settings.config))
    else:
        config = {}
    parsed = [parse_override(o) for o in overrides]
    config = apply_overrides(config, parsed)
    seed_value, seed_source, config = resolve_seed(config, seed)
    state = code_state(project.root, exclude=(settings.runs_dir,))
    require_clean(state, allow_dirty=allow_dirty)
    data = hash_datasets(settings.data)
    n_threads = threads or settings.threads or os.cpu_count() or 1
    return RunInputs(
        runs_dir=settings.runs_dir,
        project_name=settings.project_name,
        experiment=settings.experiment,
        command=tuple(command) if command else settings.command,
        config_text=dump_config(config),
        config_source=_relative(settings.config, project.root) if settings.config else None,
        overrides=tuple(overrides),
        seed=seed_value,
        seed_source=seed_source,
        threads=n_threads,
        code=state,
        gpus=gpus if gpus is not None else settings.gpus,
        data=data,
        card_template=settings.card_template,
        env=env or RunEnv(),
        resources=resources or Resources(),
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _container_user() -> tuple[str, int, int]:
    uid = os.getuid()
    if uid == 0:
        return f"{keys.CONTAINER_UID}:{keys.CONTAINER_GID}", keys.CONTAINER_UID, keys.CONTAINER_GID
    return f"{uid}:{os.getgid()}", uid, os.getgid()


def code_dir(runs_dir: Path, code: CodeState) -> Path:
    key = code.commit + (f"-{code.subdir.replace('/', '_')}" if code.subdir else "")
    suffix = f"-{code.patch_hash.split(':')[1][:16]}" if code.patch_hash else ""
    return runs_dir / ".cache" / "code" / f"{key}{suffix}"


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
        },
        "config": {
            "source": inputs.config_source,
            "overrides": list(inputs.overrides),
            "hash": config_hash(inputs.config_text),
        },
        "seed": inputs.seed,
        "seed_source": inputs.seed_source,
        "data": {name: d.to_record() for name, d in sorted(inputs.data.items())},
        "threads": inputs.threads,
        "gpus": inputs.gpus,
        "environment": {
            "image": dict(image.env),
            "run": run_environment(inputs, run_id),
            "user": inputs.env.recorded,
            "secrets": inputs.env.secrets,
        },
        "resources": {
            "memory": inputs.resources.memory,
            "shm_size": inputs.resources.shm_size,
            "cpus": inputs.resources.cpus,
        },
        "container": None,
        "host": None,  # filled in while the container starts
        "runtime": None,
        "manifest": None,
    }


def execute(
    engine: Engine,
    inputs: RunInputs,
    image: RunImage,
    *,
    say: Say,
    console: IO[bytes] | None = None,
    detach: bool = False,
) -> Path:
    """Start the job, then (unless ``detach``) follow it to the end and finish its record.

    Returns the run directory; its run.json holds the status.
    """
    if inputs.card_template is None:
        warm_up("model_card.md.j2")  # compiled while the container starts
    run_dir, attached = start(engine, inputs, image, say=say, attach=not detach)
    if detach:
        return run_dir
    follow(
        engine,
        run_dir,
        say=say,
        console=console,
        on_interrupt="stop",
        secrets=inputs.env.secret_values(),
        card_template=inputs.card_template,
        attached=attached,
    )
    return run_dir


def start(
    engine: Engine, inputs: RunInputs, image: RunImage, *, say: Say, attach: bool = True
) -> tuple[Path, Iterator[bytes] | None]:
    """Make the run directory, create and start the container, and record its id at once.

    With ``attach``, the container's output stream is opened before it starts (returned).
    """
    run_id = new_run_id()
    code_path = code_dir(inputs.runs_dir, inputs.code)
    export_code(
        inputs.code.root,
        inputs.code.commit,
        inputs.code.patch,
        code_path,
        subdir=inputs.code.subdir,
    )
    # nvidia-smi can take a while: the host is described while the container starts.
    host: dict[str, Any] = {}
    describing = threading.Thread(
        target=lambda: host.update(describe_host(engine.version())),
        name="reprise-host",
        daemon=True,
    )
    describing.start()
    record = initial_record(inputs, image, run_id)
    files: dict[str, bytes] = {
        keys.RUN_CONFIG: inputs.config_text.encode(),
        keys.RUN_DOCKERFILE: image.dockerfile,
        keys.RUN_LOCK: image.lock,
    }
    if inputs.code.dirty:
        files[keys.RUN_PATCH] = inputs.code.patch
    with storage_errors("creating the run directory", "free space in the runs directory"):
        run_dir = create_run_dir(inputs.runs_dir, inputs.experiment, run_id, files)
        write_record(run_dir, record, durable=False)
    say(f"run {run_id} in {run_dir}")
    user, uid, gid = _container_user()
    if os.getuid() == 0:
        for sub in keys.RUN_WRITABLE_DIRS:
            os.chown(run_dir / sub, uid, gid)
    spec = container_spec(inputs, image, run_dir, code_path, record, user)
    try:
        container_id = engine.create(spec)
        record["container"] = {
            "id": container_id,
            "user": user,
            "gpus": inputs.gpus,
            "memory": inputs.resources.memory,
            "shm_size": inputs.resources.shm_size,
            "cpus": inputs.resources.cpus,
        }
        record["started_at"] = utc_now()
        write_record(run_dir, record, durable=False)
        attached = engine.attach(container_id) if attach else None
        engine.start(container_id)
    except RepriseError as exc:
        describing.join()
        record = read_record(run_dir)
        record["host"] = host
        write_record(run_dir, record, durable=False)
        finalize(engine, run_dir, status="failed", exit_code=None, reason=exc.message)
        raise
    describing.join()
    with run_lock(run_dir):  # a concurrent reconcile may be finishing it already
        current = read_record(run_dir)
        if current["status"] == "running":
            current["host"] = host
            write_record(run_dir, current, durable=False)
    return run_dir, attached


def container_spec(
    inputs: RunInputs,
    image: RunImage,
    run_dir: Path,
    code_path: Path,
    record: dict[str, Any],
    user: str,
) -> ContainerSpec:
    mounts = [
        Mount(str(run_dir.resolve()), keys.CONTAINER_RUN, read_only=False),
        Mount(str((run_dir / keys.RUN_CONFIG).resolve()), keys.CONTAINER_CONFIG, read_only=True),
        Mount(str(code_path.resolve()), keys.CONTAINER_CODE, read_only=True),
    ]
    mounts += [
        Mount(str(d.path.resolve()), mount_target(d), read_only=True) for d in inputs.data.values()
    ]
    environment = {**inputs.env.values, **record["environment"]["run"]}
    return ContainerSpec(
        image=image.id,
        command=list(inputs.command),
        environment=environment,
        mounts=mounts,
        working_dir=keys.CONTAINER_CODE,
        user=user,
        labels={keys.LABEL_RUN_ID: record["run_id"], keys.LABEL_RUN_DIR: str(run_dir.resolve())},
        gpus=inputs.gpus,
        memory=inputs.resources.memory,
        shm_size=inputs.resources.shm_size,
        cpus=inputs.resources.cpus,
    )


def validate_gpus_flag(value: str | None) -> str | None:
    if value is None:
        return None

    try:
        return parse_gpus(value, key="--gpus")
    except SettingsError as exc:
        raise UsageError(exc.message) from exc
