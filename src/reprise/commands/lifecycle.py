"""A started run, to its end: follow its output, finish its record, whatever happens.

The job outlives the CLI: run.json names it as soon as it exists. Whoever comes next
(`reprise attach`, `reprise wait`, or `reprise ls`/`show` reconciling a stale `running` record)
picks up from the record, and exactly one of them finishes it (a lock beside the run).
Everything here talks to the execution seam (:class:`~reprise.execution.backend.Backend`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reprise.commands.capture import Console, capture, secrets_of
from reprise.commands.finish import finalize, outcome, run_lock
from reprise.core import keys
from reprise.core.cardsettings import CardSettings
from reprise.core.errors import Detached, EngineError, JobGoneError, RepriseError, UsageError
from reprise.core.progress import Say, quiet
from reprise.core.record import FINAL_STATES
from reprise.edges.runstore import read_record, utc_now, write_record
from reprise.execution.backend import Backend, JobExit

# How long to wait for an engine that stopped answering mid-run before calling the run lost.
ENGINE_RECOVERY_S = float(os.environ.get("REPRISE_ENGINE_RECOVERY_S", "90"))
# A `running` record with no job yet is left alone this long (it may be starting).
START_GRACE_S = 120.0
STOPPED = "stopped with `reprise stop`"


@contextlib.contextmanager
def survive_hangup() -> Iterator[None]:
    """A dropped SSH session (SIGHUP) must not stop the CLI from finishing the record."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def interrupted(
    backend: Backend, run_dir: Path, job: str | None, card: CardSettings | None, say: Say
) -> None:
    """Ctrl-C while a run goes on: stop its job and record `interrupted`."""
    say("interrupted: stopping the container")
    if job:
        with contextlib.suppress(EngineError):
            backend.stop(job, timeout=5)
    finalize(
        backend,
        run_dir,
        status="interrupted",
        exit_code=None,
        reason="interrupted by the user (Ctrl-C)",
        card=card,
        say=say,
    )


def request_stop(run_dir: Path) -> bool:
    """Record that the run is being stopped on purpose (`reprise stop`), so that whoever
    finishes it (a CLI following it, attach, wait, ls) records `interrupted`, not the signal's
    exit code; False when it has ended already."""
    with run_lock(run_dir):
        record = read_record(run_dir)
        if record["status"] in FINAL_STATES:
            return False
        record["stop_requested"] = utc_now()
        write_record(run_dir, record, durable=False)
    return True


def _stopped_on_purpose(
    run_dir: Path, ended: tuple[str, int | None, str | None]
) -> tuple[str, int | None, str | None]:
    """How a run ended: `interrupted` when it was stopped with `reprise stop`."""
    if read_record(run_dir).get("stop_requested"):
        return "interrupted", None, STOPPED
    return ended


def follow(
    backend: Backend,
    run_dir: Path,
    *,
    say: Say,
    console: IO[bytes] | None = None,
    echo: bool = True,
    on_interrupt: str = "stop",
    secrets: list[str] | None = None,
    card: CardSettings | None = None,
    attached: Iterator[bytes] | None = None,
) -> dict[str, Any]:
    """Stream the run's output until its job ends, then finish the record.

    Ctrl-C: ``on_interrupt="stop"`` stops the job and records `interrupted`; ``"detach"``
    leaves it running (attach or wait later) and re-raises.
    """
    record = read_record(run_dir)
    if record["status"] in FINAL_STATES:
        return record
    job = str(record["container"]["id"])
    if attached is None:  # picking up a run: its job must be this run's own
        state = backend.state(job)
        if state is None or not owned_by(state.labels, record):
            return reconcile(backend, run_dir, say=say)
    memory = (record.get("resources") or {}).get("memory")
    out = Console(console, echo)
    masked = secrets if secrets is not None else secrets_of(backend, record)
    warnings: list[str] = []

    def done(status: str, code: int | None, reason: str | None) -> dict[str, Any]:
        return finalize(
            backend,
            run_dir,
            status=status,
            exit_code=code,
            reason=reason,
            card=card,
            say=say,
            warnings=warnings,
        )

    with survive_hangup():
        while True:
            try:
                warnings += capture(
                    backend, run_dir, job, masked, out, follow=True, say=say, stream=attached
                )
                attached = None  # after an engine hiccup, the log is read again from the engine
                result = backend.wait(job)
            except KeyboardInterrupt:
                if on_interrupt != "stop":
                    say(f"detached; the run goes on: reprise attach {record['run_id']}")
                    raise Detached from None
                interrupted(backend, run_dir, job, card, say)
                raise
            except JobGoneError as exc:
                return done("lost", None, f"{exc.message}: it was removed while the run was going")
            except EngineError as exc:
                say(f"warning: {exc.message}; waiting for the engine to answer again")
                after = _await_engine(backend, job)
                if after == "running":
                    say("the engine is back and the run is still going: following it again")
                    continue
                return done(*_after_engine_loss(after, memory))
            break
    return done(*_stopped_on_purpose(run_dir, job_outcome(result, memory)))


def job_outcome(result: JobExit, memory: str | None) -> tuple[str, int | None, str | None]:
    """``finish.outcome``, and `interrupted` for a job stopped from outside it (a scheduler
    cancelled it, or its time limit came)."""
    status, code, reason = outcome(result, memory)
    return ("interrupted" if result.interrupted else status), code, reason


def _after_engine_loss(
    after: str | JobExit, memory: str | None
) -> tuple[str, int | None, str | None]:
    """(status, exit code, reason) of a run whose engine went away and came back (or not)."""
    if isinstance(after, JobExit):
        status, code, _ = outcome(after, memory)
        why = (
            "the engine stopped the container while the run was going "
            f"(engine restarted?): it exited with code {after.status_code}"
        )
        return ("failed" if status == "succeeded" else status), code, why
    return "lost", None, after


def _await_engine(backend: Backend, job: str) -> str | JobExit:
    """'running', the job's exit, or why the run is lost."""
    deadline = time.monotonic() + ENGINE_RECOVERY_S
    while time.monotonic() < deadline:
        try:
            state = backend.state(job)
        except EngineError:
            time.sleep(1.0)
            continue
        if state is None:
            return f"container {job[:12]} vanished when the engine stopped answering"
        if state.exit is None:
            return "running"
        return state.exit
    return f"the engine stopped answering for {ENGINE_RECOVERY_S:.0f} s while the run was going"


def reconcile(backend: Backend, run_dir: Path, *, say: Say = quiet) -> dict[str, Any]:
    """Bring a `running` record in line with the backend: finish it if its job ended, mark it
    `lost` if the job vanished; leave it if the job still runs.

    A job id is trusted only when the job carries this run's own label: a record cannot make
    reprise stop or remove someone else's container.
    """
    record = read_record(run_dir)
    if record["status"] != "running":
        return record
    job = (record.get("container") or {}).get("id")
    if not job:
        created = datetime.fromisoformat(str(record["created_at"]).replace("Z", "+00:00"))
        if (datetime.now(UTC) - created).total_seconds() < START_GRACE_S:
            return record  # it may be starting right now
        return finalize(
            backend,
            run_dir,
            status="lost",
            exit_code=None,
            reason="the CLI stopped before the container was started",
            say=say,
        )
    state = backend.state(job)
    if state is not None and not owned_by(state.labels, record):
        state = None
    if state is None:
        return finalize(
            None,
            run_dir,
            status="lost",
            exit_code=None,
            reason=f"container {job[:12]} no longer exists in the engine",
            say=say,
        )
    if state.exit is None:
        return record
    warnings: list[str] = []
    with contextlib.suppress(EngineError):
        warnings = capture(
            backend, run_dir, job, secrets_of(backend, record), Console(None, False), follow=False
        )
    status, code, why = _stopped_on_purpose(
        run_dir, job_outcome(state.exit, (record.get("resources") or {}).get("memory"))
    )
    why = why or "finished while no reprise was following it; collected afterwards"
    return finalize(
        backend, run_dir, status=status, exit_code=code, reason=why, say=say, warnings=warnings
    )


def owned_by(labels: Mapping[str, str], record: dict[str, Any]) -> bool:
    """Whether a job carries the label of this run (reprise sets it on every job it makes)."""
    return bool(labels.get(keys.LABEL_RUN_ID) == record["run_id"])


def reconcile_all(
    open_for: Callable[[Mapping[str, Any]], Backend], runs: list[Path], say: Say
) -> None:
    """Finish or mark `lost` each of ``runs`` whose `running` record no longer matches where
    it runs (``open_for(record)`` connects to it); runs whose engine does not answer are left
    as recorded, with a warning."""
    backends: dict[str, Backend | None] = {}
    for run_dir in runs:
        try:
            record = read_record(run_dir)
            where = str((record.get("executor") or {}).get("host") or "local")
            if where not in backends:
                try:
                    backends[where] = open_for(record)
                except EngineError as exc:
                    backends[where] = None
                    say(f"warning: {exc.message}; `running` runs there are shown as recorded")
            backend = backends[where]
            if backend is None:
                continue
            record = reconcile(backend, run_dir, say=say)
        except RepriseError as exc:
            say(f"warning: {run_dir.name}: {exc.message}")
            continue
        except Exception as exc:  # noqa: BLE001 (one broken run must not stop the others)
            say(f"warning: {run_dir.name} could not be finished: {type(exc).__name__}: {exc}")
            continue
        if record["status"] != "running":
            say(f"{run_dir.name}: {record['status']} ({record.get('reason') or 'collected'})")


def pick_up(run_dir: Path, *, echo: bool, card: CardSettings | None, say: Say) -> dict[str, Any]:
    """`reprise attach` / `reprise wait`: follow a running run to its end (its output to the
    terminal with ``echo``) and finish its record; Ctrl-C detaches again."""
    from reprise.execution import backend_for

    record = read_record(run_dir)
    if record["status"] in FINAL_STATES:
        say(f"run {record['run_id']} has already ended")
        return record
    backend = backend_for(record)
    if not (record.get("container") or {}).get("id"):
        record = reconcile(backend, run_dir, say=say)
        if record["status"] in FINAL_STATES:
            return record
        raise UsageError(
            f"run {record['run_id']} has not started its container yet",
            hint=f"try again in a moment: reprise attach {record['run_id']}",
        )
    return follow(backend, run_dir, say=say, echo=echo, on_interrupt="detach", card=card)
