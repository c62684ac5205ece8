"""`reprise run`: make the run directory, start the job where runs execute, follow it, and
finish the record (status, exit code, manifest) whatever happens, Ctrl-C included."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from reprise.commands.build import RunImage
from reprise.commands.card import check_template
from reprise.commands.finish import finalize, run_lock, storage_errors
from reprise.commands.inputs import RunInputs, code_dir, initial_record, prepare_run
from reprise.commands.lifecycle import follow, interrupted
from reprise.core import keys, names
from reprise.core.envvars import RunEnv
from reprise.core.errors import RepriseError, SettingsError, UsageError
from reprise.core.progress import Say
from reprise.core.record import FINAL_STATES
from reprise.core.resources import Resources
from reprise.core.settings import parse_gpus
from reprise.core.templating import warm_up
from reprise.edges.git import export_code
from reprise.edges.project import Project
from reprise.edges.runstore import create_run_dir, read_record, utc_now, write_record
from reprise.execution.backend import Backend, DataInput, JobSpec

if TYPE_CHECKING:
    from reprise.commands.slurm import SlurmRequest
    from reprise.edges.docker import Engine
    from reprise.execution import Target


def _container_user() -> tuple[str, int, int]:
    uid = os.getuid()
    if uid == 0:
        return f"{keys.CONTAINER_UID}:{keys.CONTAINER_GID}", keys.CONTAINER_UID, keys.CONTAINER_GID
    return f"{uid}:{os.getgid()}", uid, os.getgid()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[list[bool]]:
    """Hold Ctrl-C while a job is being created and recorded: it takes effect right after
    (the caller stops the job and records `interrupted`), never halfway through."""
    pending: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def hold(signum: int, frame: object) -> None:
        pending.append(True)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(
    backend: Backend,
    inputs: RunInputs,
    image: RunImage,
    *,
    say: Say,
    console: IO[bytes] | None = None,
    detach: bool = False,
) -> Path:
    """Start the job, then (unless ``detach``) follow it to the end and finish its record.

    Ctrl-C at any moment after the run directory exists stops the job and records
    `interrupted`. Returns the run directory; its run.json holds the status.
    """
    check_template(inputs.card)  # a broken card template fails before the job starts
    if inputs.card is None or inputs.card.template is None:
        warm_up("model_card.md.j2")  # compiled while the container starts
    if inputs.reproduces is not None:  # e.g. a Slurm job's layout, as the original's
        backend = backend.for_rerun(_recorded_executor(inputs))
    started: list[Path] = []
    try:
        with deferred_interrupt() as pending:
            run_dir, attached = start(
                backend, inputs, image, say=say, attach=not detach, started=started
            )
        if pending:
            raise KeyboardInterrupt
        if detach or read_record(run_dir)["status"] in FINAL_STATES:
            return run_dir
        follow(
            backend,
            run_dir,
            say=say,
            console=console,
            on_interrupt="stop",
            secrets=inputs.env.secret_values(),
            card=inputs.card,
            attached=attached,
        )
    except KeyboardInterrupt:
        if started and read_record(started[0])["status"] not in FINAL_STATES:
            with deferred_interrupt():
                job = (read_record(started[0]).get("container") or {}).get("id")
                interrupted(backend, started[0], job, inputs.card, say)
        raise
    return run_dir


def _recorded_executor(inputs: RunInputs) -> dict[str, Any]:
    """Where the run this one reproduces executed (its record's ``executor``), if it is here."""
    original = inputs.runs_dir / inputs.experiment / str(inputs.reproduces)
    with contextlib.suppress(RepriseError, OSError):
        return dict(read_record(original).get("executor") or {})
    return {}


def prepare_writable(run_dir: Path, uid: int, gid: int) -> None:
    """Give the job its writable folders, and make logs/run.log reprise's own: as root, the
    folders go to the job's user, and logs/ is root's with the sticky bit, so that the job can
    add files there but never remove or replace the console log."""
    log = run_dir / keys.RUN_LOG
    log.touch(mode=0o644)
    if os.getuid() != 0:
        return
    for sub in keys.RUN_JOB_DIRS:
        os.chown(run_dir / sub, uid, gid)
    logs = log.parent
    os.chown(logs, 0, 0)
    logs.chmod(0o1777)


def job_spec(
    inputs: RunInputs,
    image: RunImage,
    run_dir: Path,
    code_path: Path,
    record: dict[str, Any],
    user: str,
) -> JobSpec:
    return JobSpec(
        image=image.id,
        command=tuple(inputs.command),
        environment={**inputs.env.values, **record["environment"]["run"]},
        run_dir=run_dir,
        writable=keys.RUN_WRITABLE_DIRS,
        config=run_dir / keys.RUN_CONFIG,
        code=code_path,
        user=user,
        labels={keys.LABEL_RUN_ID: record["run_id"], keys.LABEL_RUN_DIR: str(run_dir.resolve())},
        data=tuple(
            DataInput(d.name, d.path, d.path.is_file()) for _, d in sorted(inputs.data.items())
        ),
        gpus=inputs.gpus,
        resources=inputs.resources,
        work=keys.RUN_WORK_DIR,
        workdir=inputs.workdir,
    )


def _make_run_dir(
    inputs: RunInputs, image: RunImage, record: dict[str, Any], uid: int, gid: int
) -> Path:
    """The run directory with its first records, all at once; the job's folders given to it."""
    files: dict[str, bytes] = {
        keys.RUN_CONFIG: inputs.config_text.encode(),
        keys.RUN_DOCKERFILE: image.dockerfile,
        keys.RUN_LOCK: image.lock,
    }
    if inputs.code.dirty:
        files[keys.RUN_PATCH] = inputs.code.patch
    with storage_errors("creating the run directory", "free space in the runs directory"):
        run_dir = create_run_dir(inputs.runs_dir, inputs.experiment, record["run_id"], files)
        prepare_writable(run_dir, uid, gid)
        if inputs.resume_dir is not None:
            carry_over(inputs.resume_dir, run_dir, record, uid)
        write_record(run_dir, record, durable=False)
    return run_dir


def carry_over(previous: Path, run_dir: Path, record: dict[str, Any], uid: int) -> None:
    """A resumed run starts with what the interrupted one left in its job folders (regular
    files only: its links and FIFOs stay behind, named), never its console log or runtime.
    Resumed from an earlier checkpoint than ``last.pt`` (a bisect pass), it starts with that
    checkpoint alone, as its ``last.pt``: not the later state of the run it came from."""
    from reprise.edges.trees import copy_job_tree

    owner = uid if os.getuid() == 0 else None
    checkpoint = str((record.get("resumes") or {}).get("checkpoint") or keys.RUN_LAST_CHECKPOINT)
    if checkpoint != keys.RUN_LAST_CHECKPOINT:
        _carry_checkpoint(previous, run_dir, record, checkpoint, owner)
        return
    left: list[str] = []
    for sub in keys.RUN_JOB_DIRS:
        if sub == keys.RUN_RUNTIME_DIR:
            continue
        skip = (keys.RUN_LOG.split("/", 1)[1],) if sub == keys.RUN_LOG.split("/", 1)[0] else ()
        left += [
            f"{sub}/{p}" for p in copy_job_tree(previous / sub, run_dir / sub, uid=owner, skip=skip)
        ]
    if left:
        shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
        record.setdefault("warnings", []).append(
            f"{len(left)} entries of the interrupted run were not carried over: {shown}"
        )


def _carry_checkpoint(
    previous: Path, run_dir: Path, record: dict[str, Any], checkpoint: str, owner: int | None
) -> None:
    """``checkpoint`` of ``previous`` as this run's ``last.pt``, if it is still the file
    (by hash) the record names; else the run starts from the beginning and says so."""
    from reprise.edges.hashing import hash_fd
    from reprise.edges.runfiles import open_regular
    from reprise.edges.trees import copy_job_file

    folder, _, name = checkpoint.rpartition("/")
    last_folder, _, last_name = keys.RUN_LAST_CHECKPOINT.rpartition("/")
    copied = copy_job_file(previous / folder, name, run_dir / last_folder, last_name, uid=owner)
    found = None
    if copied:
        fd = open_regular(run_dir, keys.RUN_LAST_CHECKPOINT)
        try:
            found = "blake3:" + hash_fd(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    if found != record["resumes"].get("checkpoint_hash"):
        if copied:
            (run_dir / keys.RUN_LAST_CHECKPOINT).unlink()
        record.setdefault("warnings", []).append(
            f"{checkpoint} could not be carried over as it was hashed: the run starts from "
            "the beginning"
        )
        record["resumes"] = None


def cannot_exec(message: str) -> bool:
    """Whether the engine could not start the command at all (not found, not executable)."""
    return "executable file not found" in message or (
        "exec:" in message
        and ("no such file or directory" in message or "permission denied" in message)
    )


def _set_host(run_dir: Path, host: dict[str, Any]) -> None:
    with run_lock(run_dir):  # a concurrent reconcile may be finishing it already
        current = read_record(run_dir)
        if current["status"] == "running":
            current["host"] = host
            write_record(run_dir, current, durable=False)


def start(
    backend: Backend,
    inputs: RunInputs,
    image: RunImage,
    *,
    say: Say,
    attach: bool = True,
    started: list[Path] | None = None,
) -> tuple[Path, Iterator[bytes] | None]:
    """Make the run directory, create and start the job, and record its id at once.

    With ``attach``, the job's output stream is opened before it starts (returned). The run
    directory is appended to ``started`` as soon as it exists.
    """
    run_id = names.new_run_id()
    code_path = code_dir(inputs.runs_dir, inputs.code)
    user, uid, gid = _container_user()
    record = initial_record(inputs, image, run_id)
    record["executor"] = backend.executor
    planned = inputs.runs_dir / inputs.experiment / run_id
    backend.ensure_image(image.id, (), say)
    backend.check(
        job_spec(inputs, image, planned, code_path, record, user)
    )  # before anything exists
    code = inputs.code
    export_code(code.root, code.commit, code.patch, code_path, subdir=code.subdir)
    # nvidia-smi can take a while: the host is described while the job starts.
    host: dict[str, Any] = {}
    describing = threading.Thread(
        target=lambda: host.update(backend.describe_host(image.id)),
        name="reprise-host",
        daemon=True,
    )
    describing.start()
    run_dir = _make_run_dir(inputs, image, record, uid, gid)
    if started is not None:
        started.append(run_dir)
    say(f"run {run_id} in {run_dir}")
    try:
        job = backend.create(job_spec(inputs, image, run_dir, code_path, record, user))
        record["container"] = {
            "id": job,
            "user": user,
            "gpus": inputs.gpus,
            **inputs.resources.to_record(),
            "security": backend.security,
        }
        record["started_at"] = utc_now()
        write_record(run_dir, record, durable=False)
        attached = backend.attach(job) if attach else None
        backend.start(job)
    except RepriseError as exc:
        describing.join()
        _set_host(run_dir, host)
        if not cannot_exec(exc.message):
            finalize(backend, run_dir, status="failed", exit_code=None, reason=exc.message)
            raise
        # The command itself is not in the image: the job's failure (exit 127), not the engine's.
        finalize(backend, run_dir, status="failed", exit_code=127, reason=exc.message, say=say)
        return run_dir, None
    describing.join()
    _set_host(run_dir, host)
    return run_dir, attached


def validate_gpus_flag(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_gpus(value, key="--gpus")
    except SettingsError as exc:
        raise UsageError(exc.message) from exc


def launch(
    project: Project,
    *,
    overrides: Sequence[str],
    seed: int | None,
    command: Sequence[str] | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    env: RunEnv,
    resources: Resources,
    detach: bool,
    say: Say,
    host: str | None = None,
    context: str | None = None,
    determinism: str | None = None,
    slurm: SlurmRequest | None = None,
    dry_run: bool = False,
) -> Path | str:
    """`reprise run`: check every input, connect to where runs execute (``host`` or
    ``context``, else the settings and the docker environment; ``slurm``: a Slurm cluster),
    build (or reuse) the image here, and (unless ``detach``) follow the job to the end.
    Returns the run directory; with ``dry_run``, the batch script it would submit."""
    from reprise.commands.build import check_build_settings
    from reprise.commands.prepare import with_prepared
    from reprise.commands.slurm import slurm_target_for
    from reprise.core.sbatch import RANK_LOGS
    from reprise.edges.project import read_lock
    from reprise.execution import Target, is_slurm, open_backend, resolve_target

    check_build_settings(project.settings)
    target = resolve_target(host=host, context=context, setting=project.settings.host)
    named = host is not None or context is not None
    target = slurm_target_for(target, slurm, project.settings, gpus=gpus, named=named)
    on_slurm = is_slurm(target.host)
    if dry_run and not on_slurm:
        raise UsageError("--dry-run prints the batch script of a run on Slurm: add --slurm")
    lock = read_lock(project)
    inputs = prepare_run(
        project,
        overrides=overrides,
        seed=seed,
        command=command,
        allow_dirty=allow_dirty,
        gpus=gpus,
        threads=threads,
        env=env,
        resources=resources,
        lock=lock,
        determinism=determinism,
    )
    if on_slurm:  # GPUs are per node; each rank's log is its console: kept, not compared
        per_node = target.slurm.gpus_per_node
        volatile = (*inputs.volatile, RANK_LOGS)
        inputs = dataclasses.replace(
            inputs, gpus=str(per_node) if per_node else None, volatile=volatile
        )
    backend, engine, image = connect_and_build(project, target, lock, say)
    if dry_run:
        return plan(backend, inputs, image)
    s = project.settings
    # A prepare step (with network) runs on this machine's engine when runs go to Slurm.
    preparing = open_backend(Target(), engine=engine) if on_slurm else backend
    inputs = with_prepared(preparing, inputs, image, s.prepare, ca_bundle=s.ca_bundle, say=say)
    return execute(backend, inputs, image, say=say, detach=detach)


def connect_and_build(
    project: Project, target: Target, lock: bytes, say: Say
) -> tuple[Backend, Engine, RunImage]:
    """Where the runs execute (a remote one is reached first: it fails before any build),
    this machine's engine, and the image built (or reused) on it."""
    from reprise.commands.build import build, run_image
    from reprise.edges.docker import Engine
    from reprise.execution import open_backend

    remote = open_backend(target) if target.remote else None
    engine = Engine.from_env()
    image = run_image(build(project, engine, say, lock=lock))
    backend = remote or open_backend(target, engine=engine if target.host is None else None)
    return backend, engine, image


def plan(backend: Backend, inputs: RunInputs, image: RunImage) -> str:
    """What ``start`` would give the backend, as text; nothing is made or submitted."""
    run_id = names.new_run_id()
    record = initial_record(inputs, image, run_id)
    user = _container_user()[0]
    run_dir = (inputs.runs_dir / inputs.experiment / run_id).resolve()
    code_path = code_dir(inputs.runs_dir, inputs.code).resolve()
    return backend.plan(job_spec(inputs, image, run_dir, code_path, record, user))
