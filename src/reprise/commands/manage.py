"""What a person does to the runs they have: name, tag and annotate them (`reprise tag`,
`reprise note`), stop one (`reprise stop`), read its output (`reprise logs`), remove some
(`reprise rm`).

A record is changed only under the run's lock and written whole (atomic rename), so that a
change never races the CLI that finishes the run. Whatever the job wrote is read through
``edges.runfiles`` (regular files only, never through a link); a run directory is removed
with ``edges.trees.remove_tree`` (no recursion, no link followed).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from reprise.commands.finish import finalize, run_lock
from reprise.commands.lifecycle import STOPPED, owned_by, reconcile, reconcile_all, request_stop
from reprise.core import keys, names
from reprise.core.cardsettings import CardSettings
from reprise.core.errors import EngineError, RecordError, RepriseError, UsageError
from reprise.core.progress import Say, quiet
from reprise.core.record import FINAL_STATES
from reprise.edges.runstore import read_record, utc_now, write_record
from reprise.execution.backend import Backend

MAX_TAGS = 256
MAX_NOTES = 1024
MAX_NOTE = 4096
_CHUNK = 1 << 16

OpenFor = Callable[[Mapping[str, Any]], Backend]


def _backend_for(record: Mapping[str, Any]) -> Backend:
    from reprise.execution import backend_for

    return backend_for(record)


def _update(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    with run_lock(run_dir):
        record = read_record(run_dir)
        change(record)
        write_record(run_dir, record)
    return record


# --- names, tags, notes --------------------------------------------------------------------
def check_name_free(runs_dir: Path, name: str) -> str:
    """``name`` if it is a valid run name no run under ``runs_dir`` carries yet."""
    from reprise.edges.runindex import all_summaries

    names.run_name(name, "--name")
    for summary in all_summaries(runs_dir):
        if summary.get("name") == name:
            raise UsageError(
                f"the name {name!r} is taken by run {summary['run_id']}",
                hint="choose another name (a name addresses one run); "
                f"`reprise rm {summary['run_id']}` removes that run",
            )
    return name


def set_name(run_dir: Path, name: str) -> dict[str, Any]:
    """Give the run its name (checked by the caller against the runs directory)."""
    names.run_name(name, "--name")

    def change(record: dict[str, Any]) -> None:
        record["name"] = name

    return _update(run_dir, change)


def tag_run(run_dir: Path, add: Sequence[str], remove: Sequence[str] = ()) -> dict[str, Any]:
    """Add ``add`` to the run's tags (each once, in order) and take ``remove`` off."""
    for tag in (*add, *remove):
        names.run_tag(tag, "tag")

    def change(record: dict[str, Any]) -> None:
        tags = [t for t in record.get("tags") or [] if t not in remove]
        tags += [t for t in dict.fromkeys(add) if t not in tags]
        if len(tags) > MAX_TAGS:
            raise UsageError(
                f"run {record['run_id']} would have {len(tags)} tags: at most {MAX_TAGS}",
                hint="remove some with `reprise tag RUN --remove TAG`",
            )
        record["tags"] = tags

    return _update(run_dir, change)


def note_run(run_dir: Path, text: str) -> dict[str, Any]:
    """Add a note (with the time) to the run's record."""
    text = text.strip()
    if not text:
        raise UsageError("the note is empty", hint='e.g. reprise note RUN "lr too high: diverged"')
    if len(text) > MAX_NOTE:
        raise UsageError(
            f"the note is {len(text)} characters: at most {MAX_NOTE}",
            hint="keep notes short; longer text belongs in a file beside the project",
        )

    def change(record: dict[str, Any]) -> None:
        notes = list(record.get("notes") or [])
        if len(notes) >= MAX_NOTES:
            raise UsageError(f"run {record['run_id']} has {MAX_NOTES} notes already: no more")
        record["notes"] = [*notes, {"text": text, "at": utc_now()}]

    return _update(run_dir, change)


# --- stop ----------------------------------------------------------------------------------
def stop_run(
    run_dir: Path,
    *,
    timeout: int = 10,
    card: CardSettings | None = None,
    say: Say = quiet,
    open_for: OpenFor = _backend_for,
) -> dict[str, Any]:
    """`reprise stop`: stop the run's job where it runs (SIGTERM, then SIGKILL after
    ``timeout`` seconds) and record `interrupted`, as Ctrl-C does. A run that has ended
    already is left as it is; one whose job ended or vanished meanwhile is finished as
    `ls` would."""
    record = read_record(run_dir)
    if record["status"] in FINAL_STATES:
        say(f"run {record['run_id']} has already ended: {record['status']}")
        return record
    backend = open_for(record)
    job = (record.get("container") or {}).get("id")
    if not job:
        record = reconcile(backend, run_dir, say=say)
        if record["status"] in FINAL_STATES:
            return record
        raise UsageError(
            f"run {record['run_id']} has not started its container yet",
            hint=f"try again in a moment: reprise stop {record['run_id']}",
        )
    state = backend.state(str(job))
    if state is None or state.ended or not owned_by(state.labels, record):
        return reconcile(backend, run_dir, say=say)
    if not request_stop(run_dir):
        return read_record(run_dir)
    say(f"stopping run {record['run_id']} (container {str(job)[:12]})")
    try:
        backend.stop(str(job), timeout=timeout)
    except EngineError:
        _update(run_dir, _withdraw_stop)  # not stopped: it ends as it will
        raise
    return finalize(
        backend,
        run_dir,
        status="interrupted",
        exit_code=None,
        reason=STOPPED,
        card=card,
        say=say,
        warnings=_capture_rest(backend, run_dir, str(job), record),
    )


def _capture_rest(backend: Backend, run_dir: Path, job: str, record: dict[str, Any]) -> list[str]:
    """A detached run has no follower writing logs/run.log: what the job printed goes there
    now, from the backend (only what is not there already), before the job is removed."""
    from reprise.commands.capture import Console, capture, secrets_of

    with contextlib.suppress(EngineError):
        return capture(
            backend, run_dir, job, secrets_of(backend, record), Console(None, False), follow=False
        )
    return []


def _withdraw_stop(record: dict[str, Any]) -> None:
    if record["status"] not in FINAL_STATES:
        record.pop("stop_requested", None)


# --- logs ----------------------------------------------------------------------------------
def _copy_log(run_dir: Path, out: IO[bytes]) -> None:
    from reprise.edges.runfiles import PlantedFileError, open_regular

    try:
        fd = open_regular(run_dir, keys.RUN_LOG)
    except FileNotFoundError:
        raise UsageError(
            f"run {run_dir.name} has no {keys.RUN_LOG}",
            hint="a run started with --detach writes it once attach, wait or ls collects it",
        ) from None
    except PlantedFileError as exc:
        raise RecordError(
            f"{run_dir / keys.RUN_LOG} is not reprise's log: {exc.strerror}; not read",
            path=str(run_dir / keys.RUN_LOG),
        ) from None
    try:
        while chunk := os.read(fd, _CHUNK):
            out.write(chunk)
    finally:
        os.close(fd)
    out.flush()


def stream_logs(
    run_dir: Path,
    out: IO[bytes],
    *,
    follow: bool,
    say: Say = quiet,
    open_for: OpenFor = _backend_for,
) -> None:
    """`reprise logs`: an ended run's logs/run.log; a running run's output from where it runs
    (to its end with ``follow``), its secrets masked as in run.log."""
    from reprise.commands.capture import secrets_of
    from reprise.core.envvars import Redactor

    record = read_record(run_dir)
    job = (record.get("container") or {}).get("id")
    if record["status"] in FINAL_STATES or not job:
        _copy_log(run_dir, out)
        return
    try:
        backend = open_for(record)
        state = backend.state(str(job))
        if state is None or not owned_by(state.labels, record):
            raise EngineError(f"container {str(job)[:12]} is no longer where the run ran")
        redactor = Redactor(secrets_of(backend, record))
        for chunk in backend.logs(str(job), follow=follow):
            out.write(redactor.feed(chunk))
            out.flush()
        out.write(redactor.flush())
        out.flush()
    except EngineError as exc:
        say(f"warning: {exc.message}; showing {keys.RUN_LOG} as it is")
        _copy_log(run_dir, out)


# --- rm ------------------------------------------------------------------------------------
def check_removable(
    run_dirs: Iterable[Path], *, say: Say = quiet, open_for: OpenFor = _backend_for
) -> list[tuple[Path, dict[str, Any] | None]]:
    """The runs to remove with their records (None for a record that cannot be read); a
    `running` record is reconciled first, and one still running refuses them all."""
    found: list[tuple[Path, dict[str, Any] | None]] = []
    for run_dir in dict.fromkeys(run_dirs):
        if not names.RUN_ID.fullmatch(run_dir.name):
            raise UsageError(
                f"{run_dir} is not named as a run directory: not removed",
                hint="pass a run id, a name or a directory under the runs directory",
            )
        try:
            record: dict[str, Any] | None = read_record(run_dir)
        except RecordError as exc:
            say(f"warning: {run_dir.name}: {exc.message}")
            record = None
        if record is not None and record["status"] == "running":
            reconcile_all(open_for, [run_dir], say)
            record = read_record(run_dir)
            if record["status"] == "running":
                raise UsageError(
                    f"run {record['run_id']} is running: not removed (nothing was)",
                    hint=f"stop it first: reprise stop {record['run_id']}",
                )
        found.append((run_dir, record))
    return found


def remove_run(run_dir: Path) -> None:
    """Remove the run directory (and its lock beside it), never following a link."""
    from reprise.edges.trees import remove_tree

    lock = run_dir.parent / f".{run_dir.name}.lock"
    with run_lock(run_dir):
        try:
            status = read_record(run_dir)["status"]
        except RepriseError:
            status = None
        if status == "running":
            raise UsageError(f"run {run_dir.name} started running again: not removed")
        remove_tree(run_dir)
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
