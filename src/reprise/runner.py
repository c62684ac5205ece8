"""`reprise run`: validate every input first, then make the run directory, run the container,
stream its output, and finish the record (status, exit code, manifest) whatever happens."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reprise import __version__, keys
from reprise.builder import RunImage
from reprise.card import write_card
from reprise.config import (
    apply_overrides,
    config_hash,
    dump_config,
    load_config_text,
    parse_override,
)
from reprise.datasets import Dataset, hash_datasets, mount_target
from reprise.engine import ContainerSpec, Engine, Mount
from reprise.errors import ConfigError, RepriseError, SettingsError, UsageError
from reprise.gitrepo import CodeState, code_state, export_code, require_clean
from reprise.hostinfo import describe_host
from reprise.image import sha256
from reprise.manifest import manifest_of_run
from reprise.project import Project
from reprise.runstore import (
    atomic_write,
    create_run_dir,
    new_run_id,
    read_record,
    utc_now,
    write_record,
)
from reprise.settings import parse_gpus

Say = Callable[[str], None]
LOG_TAIL_LINES = 40


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
    env: Mapping[str, str] = field(default_factory=dict)
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


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(Path(dirpath) / name, uid, gid)


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
    env.update(inputs.env)
    return dict(sorted(env.items()))


def initial_record(
    inputs: RunInputs, image: RunImage, run_id: str, engine_version: str
) -> dict[str, Any]:
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
        },
        "container": None,
        "host": describe_host(engine_version),
        "runtime": None,
        "manifest": None,
    }


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def execute(
    engine: Engine,
    inputs: RunInputs,
    image: RunImage,
    *,
    say: Say,
    console: IO[bytes] | None = None,
) -> Path:
    """Run the job; returns the run directory, whose run.json holds the final status."""
    run_id = new_run_id()
    code_path = code_dir(inputs.runs_dir, inputs.code)
    export_code(
        inputs.code.root,
        inputs.code.commit,
        inputs.code.patch,
        code_path,
        subdir=inputs.code.subdir,
    )
    record = initial_record(inputs, image, run_id, engine.version())
    files: dict[str, bytes] = {
        keys.RUN_CONFIG: inputs.config_text.encode(),
        keys.RUN_DOCKERFILE: image.dockerfile,
        keys.RUN_LOCK: image.lock,
    }
    if inputs.code.dirty:
        files[keys.RUN_PATCH] = inputs.code.patch
    run_dir = create_run_dir(inputs.runs_dir, inputs.experiment, run_id, files)
    write_record(run_dir, record)
    say(f"run {run_id} in {run_dir}")
    try:
        return _run_container(engine, inputs, image, run_dir, code_path, record, say, console)
    finally:
        if read_record(run_dir)["status"] != "running":
            render_card_safely(run_dir, inputs.card_template, say)


def render_card_safely(run_dir: Path, template: Path | None, say: Say) -> None:
    """A broken card template must not lose a finished run: warn, and go on."""
    import jinja2

    try:
        write_card(run_dir, template_path=template)
    except (OSError, jinja2.TemplateError, RepriseError) as exc:
        say(f"warning: the model card could not be rendered: {exc}")


def _run_container(
    engine: Engine,
    inputs: RunInputs,
    image: RunImage,
    run_dir: Path,
    code_path: Path,
    record: dict[str, Any],
    say: Say,
    console: IO[bytes] | None,
) -> Path:
    user, uid, gid = _container_user()
    as_root = os.getuid() == 0
    if as_root:
        for sub in keys.RUN_WRITABLE_DIRS:
            os.chown(run_dir / sub, uid, gid)
    mounts = [
        Mount(str(run_dir.resolve()), keys.CONTAINER_RUN, read_only=False),
        Mount(str((run_dir / keys.RUN_CONFIG).resolve()), keys.CONTAINER_CONFIG, read_only=True),
        Mount(str(code_path.resolve()), keys.CONTAINER_CODE, read_only=True),
    ]
    mounts += [
        Mount(str(d.path.resolve()), mount_target(d), read_only=True) for d in inputs.data.values()
    ]
    spec = ContainerSpec(
        image=image.id,
        command=list(inputs.command),
        environment=record["environment"]["run"],
        mounts=mounts,
        working_dir=keys.CONTAINER_CODE,
        user=user,
        labels={keys.LABEL_RUN_ID: record["run_id"], keys.LABEL_RUN_DIR: str(run_dir.resolve())},
        gpus=inputs.gpus,
    )
    container_id: str | None = None
    log_path = run_dir / keys.RUN_LOG
    out = console if console is not None else sys.stderr.buffer
    try:
        container_id = engine.create(spec)
        record["container"] = {"id": container_id, "user": user, "gpus": inputs.gpus}
        record["started_at"] = utc_now()
        write_record(run_dir, record)
        engine.start(container_id)
        with log_path.open("ab") as log:
            for chunk in engine.logs(container_id):
                log.write(chunk)
                log.flush()
                out.write(chunk)
                out.flush()
        result = engine.wait(container_id)
        if result.oom_killed:
            record["reason"] = "out of memory"
        elif result.error:
            record["reason"] = result.error
        _finish(
            run_dir,
            record,
            "succeeded" if result.status_code == 0 else "failed",
            result.status_code,
        )
    except KeyboardInterrupt:
        say("interrupted: stopping the container")
        if container_id:
            engine.stop(container_id, timeout=5)
        record["reason"] = "interrupted by the user (Ctrl-C)"
        _finish(run_dir, record, "interrupted", None)
        raise
    except RepriseError as exc:
        record["reason"] = exc.message
        _finish(run_dir, record, "failed", None)
        raise
    finally:
        if container_id:
            engine.remove_container(container_id)
        if as_root:
            _chown_tree(run_dir, 0, 0)
    return run_dir


def _finish(run_dir: Path, record: dict[str, Any], status: str, exit_code: int | None) -> None:
    record["status"] = status
    record["exit_code"] = exit_code
    now = datetime.now(UTC)
    record["finished_at"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    started = record.get("started_at") or record["created_at"]
    start_dt = datetime.fromisoformat(started.replace("Z", "+00:00"))
    record["duration_s"] = round((now - start_dt).total_seconds(), 3)
    runtime_file = run_dir / keys.RUN_RUNTIME_DIR / "runtime.json"
    if runtime_file.is_file():
        try:
            record["runtime"] = json.loads(runtime_file.read_text())
        except ValueError:
            record["runtime"] = None
    manifest = manifest_of_run(run_dir)
    text = manifest.to_json()
    atomic_write(run_dir / keys.RUN_MANIFEST, text)
    record["manifest"] = {
        "algorithm": manifest.algorithm,
        "files": len(manifest.files),
        "hash": sha256(text.encode()),
    }
    if status != "succeeded":
        tail = _tail(run_dir / keys.RUN_LOG, LOG_TAIL_LINES)
        reason = record.get("reason") or ""
        failed = f"status: {status}\nexit code: {exit_code}\nreason: {reason}\n\n--- last lines of logs/run.log ---\n{tail}\n"
        atomic_write(run_dir / keys.RUN_FAILED, failed)
    write_record(run_dir, record)


def command_line(command: Sequence[str]) -> str:
    return shlex.join(command)


def load_finished(run_dir: Path) -> dict[str, Any]:
    return read_record(run_dir)


def validate_gpus_flag(value: str | None) -> str | None:
    if value is None:
        return None

    try:
        return parse_gpus(value, key="--gpus")
    except SettingsError as exc:
        raise UsageError(exc.message) from exc
