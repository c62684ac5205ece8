"""A started run, to its end: follow its output, finish its record, whatever happens.

The container outlives the CLI: run.json names it as soon as it exists. Whoever comes next
(`reprise attach`, `reprise wait`, or `reprise ls`/`show` reconciling a stale `running` record)
picks up from the record, and exactly one of them finishes it (a lock beside the run).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reprise import keys
from reprise.card import write_card
from reprise.engine import ContainerExit, ContainerGoneError, Engine
from reprise.envvars import Redactor
from reprise.errors import EXIT_UNAVAILABLE, EngineError, RepriseError
from reprise.image import sha256
from reprise.manifest import manifest_of_run
from reprise.runstore import atomic_write, file_lock, read_record, write_record

Say = Callable[[str], None]
FINAL_STATES = frozenset({"succeeded", "failed", "interrupted", "lost"})
LOG_TAIL_LINES = 40
# How long to wait for an engine that stopped answering mid-run before calling the run lost.
ENGINE_RECOVERY_S = float(os.environ.get("REPRISE_ENGINE_RECOVERY_S", "90"))
# A `running` record with no container yet is left alone this long (it may be starting).
START_GRACE_S = 120.0


class StorageError(RepriseError):
    """The disk refused a write (full, quota, read-only): the previous record is intact."""

    exit_code = EXIT_UNAVAILABLE


def _quiet(_: str) -> None:
    return None


@contextlib.contextmanager
def storage_errors(doing: str, hint: str) -> Iterator[None]:
    """A full, over-quota or read-only disk becomes one clear StorageError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise StorageError(
                f"the disk refused a write while {doing}: {exc.strerror} ({exc.filename or '?'})",
                hint=hint,
            ) from exc
        raise


# --- finishing -----------------------------------------------------------------------------
def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock beside the run directory (not in it: it is no output)."""
    return file_lock(run_dir.parent / f".{run_dir.name}.lock")


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(Path(dirpath) / name, uid, gid)


def _complete(run_dir: Path, record: dict[str, Any], status: str, exit_code: int | None) -> None:
    """Status, times, runtime record, manifest, FAILED, then run.json: each written atomically."""
    record["status"] = status
    record["exit_code"] = exit_code
    now = datetime.now(UTC)
    record["finished_at"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    started = record.get("started_at") or record["created_at"]
    record["duration_s"] = round(
        (now - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds(), 3
    )
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
        failed = (
            f"status: {status}\nexit code: {exit_code}\nreason: {record.get('reason') or ''}\n\n"
            f"--- last lines of logs/run.log ---\n{tail}\n"
        )
        atomic_write(run_dir / keys.RUN_FAILED, failed, durable=False)
    write_record(run_dir, record)


def finalize(
    engine: Engine | None,
    run_dir: Path,
    *,
    status: str,
    exit_code: int | None,
    reason: str | None,
    card_template: Path | None = None,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Finish the record once (a second caller finds it final and leaves it), then tidy up."""
    with run_lock(run_dir):
        record = read_record(run_dir)
        if record["status"] in FINAL_STATES:
            return record
        if os.getuid() == 0:
            _chown_tree(run_dir, 0, 0)
        record["reason"] = reason
        with storage_errors(
            f"finishing the record of run {record['run_id']}",
            "free space in the runs directory, then run `reprise ls` (or `reprise wait "
            f"{record['run_id']}`) to finish it; the previous run.json is intact",
        ):
            _complete(run_dir, record, status, exit_code)
    container = record.get("container") or {}
    if engine is not None and container.get("id"):
        with contextlib.suppress(EngineError):
            engine.remove_container(container["id"])
    render_card_safely(run_dir, card_template, say)
    return record


def render_card_safely(run_dir: Path, template: Path | None, say: Say) -> None:
    """A broken card template must not lose a finished run: warn, and go on."""
    import jinja2

    try:
        write_card(run_dir, template_path=template)
    except (OSError, jinja2.TemplateError, RepriseError) as exc:
        say(f"warning: the model card could not be rendered: {exc}")


def outcome(result: ContainerExit, memory_limit: str | None) -> tuple[str, int | None, str | None]:
    """(status, exit code, reason) from how the container ended."""
    if result.oom_killed:
        limit = f" (memory limit {memory_limit})" if memory_limit else ""
        return "failed", result.status_code, f"out of memory{limit}: the kernel killed the job"
    status = "succeeded" if result.status_code == 0 else "failed"
    return status, result.status_code, result.error


# --- following -----------------------------------------------------------------------------
def _count_lines(path: Path) -> int:
    """Complete lines already captured; a partial last line is cut (it is captured again)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as fh:
            fh.truncate(keep)
    return data.count(b"\n", 0, keep)


def _skip_lines(chunk: bytes, lines: int) -> tuple[bytes, int]:
    while lines and chunk:
        at = chunk.find(b"\n")
        if at < 0:
            return b"", lines
        chunk = chunk[at + 1 :]
        lines -= 1
    return chunk, lines


class _Console:
    """The terminal, until it goes away (SSH dropped): then the run goes on without it."""

    def __init__(self, out: IO[bytes] | None, enabled: bool) -> None:
        self.out = out if out is not None else sys.stderr.buffer
        self.enabled = enabled

    def write(self, data: bytes) -> None:
        if not self.enabled or not data:
            return
        try:
            self.out.write(data)
            self.out.flush()
        except (OSError, ValueError):
            self.enabled = False


@contextlib.contextmanager
def _survive_hangup() -> Iterator[None]:
    """A dropped SSH session (SIGHUP) must not stop the CLI from finishing the record."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def secrets_of(engine: Engine, record: dict[str, Any]) -> list[str]:
    """The secret values a run was given (read back from its container), to mask them."""
    names = set((record.get("environment") or {}).get("secrets") or [])
    container = (record.get("container") or {}).get("id")
    if not names or not container:
        return []
    state = engine.container_state(container) or {}
    values = []
    for item in state.get("Env") or []:
        name, _, value = str(item).partition("=")
        if name in names and value:
            values.append(value)
    return values


class _LogFile:
    """logs/run.log, until the disk refuses: then the output goes on, to the terminal only,
    and the next capture (attach, wait, ls) fills the file in from the container's log."""

    def __init__(self, path: Path, say: Say) -> None:
        self.path = path
        self.say = say
        self.fh: IO[bytes] | None = None
        try:
            self.fh = path.open("ab")
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        self.fh = None
        self.say(
            f"warning: cannot write {self.path}: {exc.strerror}; the output is kept in the engine"
        )

    def write(self, data: bytes) -> None:
        if self.fh is None or not data:
            return
        try:
            self.fh.write(data)
            self.fh.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.fh.close()
            self._give_up(exc)

    def close(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()


def capture(
    engine: Engine,
    run_dir: Path,
    container_id: str,
    secrets: list[str],
    console: _Console,
    *,
    follow: bool,
    say: Say = _quiet,
    stream: Iterator[bytes] | None = None,
) -> None:
    """Append to logs/run.log what the container printed beyond what is already there.

    ``stream``: an attach opened before the container started (else the engine's log).
    """
    log_path = run_dir / keys.RUN_LOG
    try:
        skip = _count_lines(log_path)
    except OSError:
        skip = 0
    redactor = Redactor(secrets)
    log = _LogFile(log_path, say)
    try:
        for raw in stream if stream is not None else engine.logs(container_id, follow=follow):
            chunk = raw
            if skip:
                chunk, skip = _skip_lines(chunk, skip)
            data = redactor.feed(chunk)
            log.write(data)
            console.write(data)
        data = redactor.flush()
        log.write(data)
        console.write(data)
    finally:
        log.close()


def follow(
    engine: Engine,
    run_dir: Path,
    *,
    say: Say,
    console: IO[bytes] | None = None,
    echo: bool = True,
    on_interrupt: str = "stop",
    secrets: list[str] | None = None,
    card_template: Path | None = None,
    attached: Iterator[bytes] | None = None,
) -> dict[str, Any]:
    """Stream the run's output until its container exits, then finish the record.

    Ctrl-C: ``on_interrupt="stop"`` stops the container and records `interrupted`;
    ``"detach"`` leaves it running (attach or wait later) and re-raises.
    """
    record = read_record(run_dir)
    if record["status"] in FINAL_STATES:
        return record
    container_id = str(record["container"]["id"])
    memory = (record.get("resources") or {}).get("memory")
    out = _Console(console, echo)
    masked = secrets if secrets is not None else secrets_of(engine, record)
    with _survive_hangup():
        while True:
            try:
                capture(
                    engine,
                    run_dir,
                    container_id,
                    masked,
                    out,
                    follow=True,
                    say=say,
                    stream=attached,
                )
                attached = None  # after an engine hiccup, the log is read again from the engine
                result = engine.wait(container_id)
            except KeyboardInterrupt:
                if on_interrupt != "stop":
                    say(f"detached; the run goes on: reprise attach {record['run_id']}")
                    raise
                say("interrupted: stopping the container")
                with contextlib.suppress(EngineError):
                    engine.stop(container_id, timeout=5)
                finalize(
                    engine,
                    run_dir,
                    status="interrupted",
                    exit_code=None,
                    reason="interrupted by the user (Ctrl-C)",
                    card_template=card_template,
                    say=say,
                )
                raise
            except ContainerGoneError as exc:
                return finalize(
                    engine,
                    run_dir,
                    status="lost",
                    exit_code=None,
                    reason=f"{exc.message}: it was removed while the run was going",
                    card_template=card_template,
                    say=say,
                )
            except EngineError as exc:
                say(f"warning: {exc.message}; waiting for the engine to answer again")
                state = _await_engine(engine, container_id, say)
                if state == "running":
                    say("the engine is back and the run is still going: following it again")
                    continue
                if isinstance(state, ContainerExit):
                    status, code, _ = outcome(state, memory)
                    why = (
                        f"the engine stopped the container while the run was going "
                        f"(engine restarted?): it exited with code {state.status_code}"
                    )
                    return finalize(
                        engine,
                        run_dir,
                        status="failed" if status == "succeeded" else status,
                        exit_code=code,
                        reason=why,
                        card_template=card_template,
                        say=say,
                    )
                return finalize(
                    engine,
                    run_dir,
                    status="lost",
                    exit_code=None,
                    reason=state,
                    card_template=card_template,
                    say=say,
                )
            break
    status, code, reason = outcome(result, memory)
    return finalize(
        engine,
        run_dir,
        status=status,
        exit_code=code,
        reason=reason,
        card_template=card_template,
        say=say,
    )


def _await_engine(engine: Engine, container_id: str, say: Say) -> str | ContainerExit:
    """'running', the container's exit, or why the run is lost."""
    deadline = time.monotonic() + ENGINE_RECOVERY_S
    while time.monotonic() < deadline:
        try:
            state = engine.container_state(container_id)
        except EngineError:
            time.sleep(1.0)
            continue
        if state is None:
            return f"container {container_id[:12]} vanished when the engine stopped answering"
        if state.get("Running") or state.get("Restarting"):
            return "running"
        return ContainerExit(
            status_code=int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            error=state.get("Error") or None,
        )
    return f"the engine stopped answering for {ENGINE_RECOVERY_S:.0f} s while the run was going"


# --- reconciling stale records -------------------------------------------------------------
def reconcile(engine: Engine, run_dir: Path, *, say: Say = _quiet) -> dict[str, Any]:
    """Bring a `running` record in line with the engine: finish it if its container exited,
    mark it `lost` if the container vanished; leave it if the container still runs."""
    record = read_record(run_dir)
    if record["status"] != "running":
        return record
    container = (record.get("container") or {}).get("id")
    if not container:
        created = datetime.fromisoformat(str(record["created_at"]).replace("Z", "+00:00"))
        if (datetime.now(UTC) - created).total_seconds() < START_GRACE_S:
            return record  # it may be starting right now
        return finalize(
            engine,
            run_dir,
            status="lost",
            exit_code=None,
            reason="the CLI stopped before the container was started",
            say=say,
        )
    state = engine.container_state(container)
    if state is None:
        return finalize(
            engine,
            run_dir,
            status="lost",
            exit_code=None,
            reason=f"container {container[:12]} no longer exists in the engine",
            say=say,
        )
    if state.get("Running") or state.get("Restarting") or state.get("Status") == "created":
        return record
    with contextlib.suppress(EngineError):
        capture(
            engine,
            run_dir,
            container,
            secrets_of(engine, record),
            _Console(None, False),
            follow=False,
        )
    result = ContainerExit(
        status_code=int(state.get("ExitCode", -1)),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or None,
    )
    status, code, why = outcome(result, (record.get("resources") or {}).get("memory"))
    why = why or "finished while no reprise was following it; collected afterwards"
    return finalize(engine, run_dir, status=status, exit_code=code, reason=why, say=say)
