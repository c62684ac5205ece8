"""Finishing a run's record, once: status, times, the runtime's record, the manifest of what
the job produced, FAILED, then run.json; and tidying up where it ran.

Everything read back from the run directory here was written by the job: it is read as regular
files only, bounded, never through a link (see ``edges.runfiles``).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprise.commands.card import write_card
from reprise.commands.inputs import HYDRA_COMPOSED
from reprise.core import keys, provenance
from reprise.core.cardsettings import CardSettings
from reprise.core.errors import EngineError, RecordError, RepriseError, StorageError
from reprise.core.failures import explain as explain_failure
from reprise.core.image import sha256
from reprise.core.progress import Say, quiet
from reprise.core.record import FINAL_STATES, load_json
from reprise.edges.hashing import manifest_of_run
from reprise.edges.runfiles import (
    PlantedFileError,
    read_regular,
    read_tail,
    read_text_or_none,
)
from reprise.edges.runstore import atomic_write, file_lock, read_record, write_record
from reprise.edges.trees import MAX_CHOWN_DEPTH, chown_tree, remove_tree
from reprise.execution.backend import Backend, JobExit

LOG_TAIL_LINES = 40
RUNTIME_LIMIT = 4 << 20
RUNTIME_RECORD = f"{keys.RUN_RUNTIME_DIR}/runtime.json"
CONFIG_READ = f"{keys.RUN_RUNTIME_DIR}/config-read"  # made by the runtime's audit hook


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


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock beside the run directory (not in it: it is no output)."""
    return file_lock(run_dir.parent / f".{run_dir.name}.lock")


def runtime_record(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """What the runtime recorded inside the job (runtime/runtime.json), and a warning when it
    could not be used."""
    try:
        found = read_regular(run_dir, RUNTIME_RECORD, RUNTIME_LIMIT)
    except PlantedFileError as exc:
        return None, f"{exc.strerror} made by the job: not read"
    except OSError as exc:
        return None, f"{RUNTIME_RECORD} could not be read: {exc.strerror or exc}"
    if found is None:
        return None, None
    data, truncated = found
    if truncated:
        return None, f"{RUNTIME_RECORD} is over {RUNTIME_LIMIT} bytes: not read"
    try:
        value = load_json(data, limit=RUNTIME_LIMIT, what=RUNTIME_RECORD)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, f"{RUNTIME_RECORD} is not a JSON object: not used"
    return value, None


def config_outcome(run_dir: Path, record: dict[str, Any], notes: list[str]) -> None:
    """What config the job actually used: Hydra's composed config becomes the run's
    config.yaml (and its hash); for a config file, whether a Python process opened it."""
    config = record["config"]
    if config.get("delivery") == "hydra":
        composed = read_text_or_none(run_dir, HYDRA_COMPOSED, 16 << 20)
        config["composed"] = composed is not None
        if composed is None:
            notes.append(f"Hydra wrote no {HYDRA_COMPOSED}: the config the job used is not known")
            return
        atomic_write(run_dir / keys.RUN_CONFIG, composed, durable=False)
        config["hash"] = sha256(composed.encode())
        return
    if config.get("delivery", "file") != "file":
        return
    try:
        marker = read_regular(run_dir, CONFIG_READ, 1024)
    except OSError:
        marker = None
    config["read"] = marker is not None
    if marker is None and config.get("overrides"):
        notes.append(
            "overrides were given, but no Python process of the job opened $REPRISE_CONFIG: "
            f"they did not reach it ({', '.join(config['overrides'])}); "
            'a Hydra app takes them with config-delivery = "hydra"'
        )


def failed_text(record: dict[str, Any], tail: str) -> str:
    """FAILED: status, exit code, the reason (never empty), a hint for known causes, the
    log's last lines."""
    hint = f"hint: {record['hint']}\n" if record.get("hint") else ""
    lines = "\n".join(tail.splitlines()[-LOG_TAIL_LINES:])
    return (
        f"status: {record['status']}\nexit code: {record.get('exit_code')}\n"
        f"reason: {record['reason']}\n{hint}\n"
        f"--- last lines of {keys.RUN_LOG} ---\n{lines}\n"
    )


def _complete(
    run_dir: Path,
    record: dict[str, Any],
    status: str,
    exit_code: int | None,
    warnings: Sequence[str],
    say: Say = quiet,
) -> None:
    record["status"] = status
    record["exit_code"] = exit_code
    now = datetime.now(UTC)
    record["finished_at"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    started = record.get("started_at") or record["created_at"]
    record["duration_s"] = round(
        (now - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds(), 3
    )
    notes = list(record.get("warnings") or []) + list(warnings)
    record_outputs(run_dir, record, notes, say)


def record_outputs(
    run_dir: Path, record: dict[str, Any], notes: list[str], say: Say = quiet
) -> None:
    """What the job left, into the record (written last): the config it used, the runtime's
    record, the manifest of its outputs, and FAILED for a run that did not succeed. For a run
    whose outputs are still where it ran (``fetched`` false) nothing of them is claimed."""
    if record.get("fetched") is False:
        record["manifest"] = None
        record["warnings"] = list(dict.fromkeys(notes))
        write_record(run_dir, record)
        return
    config_outcome(run_dir, record, notes)
    record["runtime"], note = runtime_record(run_dir)
    if note:
        notes.append(note)
    manifest = manifest_of_run(run_dir, say)
    text = manifest.to_json()
    atomic_write(run_dir / keys.RUN_MANIFEST, text)
    record["manifest"] = {
        "algorithm": manifest.algorithm,
        "files": len(manifest.files),
        "hash": sha256(text.encode()),
        "complete": manifest.complete,
    }
    if not manifest.complete:
        notes.append(f"the manifest is incomplete: {manifest.note}")
    odd = [e for e in manifest.files if e.kind != "file"]
    if odd:
        shown = ", ".join(f"{e.path} ({e.kind})" for e in odd[:5])
        notes.append(
            f"the job made {len(odd)} entries that are not regular files, recorded as what they are and never followed: {shown}"
            + (" ..." if len(odd) > 5 else "")
        )
    if notes:
        record["warnings"] = list(dict.fromkeys(notes))
    with contextlib.suppress(OSError):
        atomic_write(run_dir / provenance.FILE, provenance.statement_json(record), durable=False)
    if record["status"] != "succeeded":
        tail = read_tail(run_dir, keys.RUN_LOG, 64 << 10)
        failure = explain_failure(tail, record.get("exit_code"), record.get("reason"))
        record["reason"], record["hint"] = failure.reason, failure.hint
        atomic_write(run_dir / keys.RUN_FAILED, failed_text(record, tail), durable=False)
    write_record(run_dir, record)


UNFETCHED = "the outputs could not be fetched from where the run ran"


def _kept(run_id: str) -> str:
    return f"its container is kept there: `reprise fetch {run_id}` fetches them"


def collect(backend: Backend, job: str, run_dir: Path, say: Say) -> str | None:
    """Bring the job's outputs into the run directory and make them reprise's (root's, as
    root); returns why they could not be fetched, or None."""
    try:
        backend.collect(job, run_dir, say)
    except (EngineError, StorageError, RecordError) as exc:
        return exc.message
    finally:
        settle_job_dirs(run_dir, say)
    return None


def settle_job_dirs(run_dir: Path, say: Say) -> None:
    """As root, make the job's folders root's (the job's user may be a real user here); drop
    the overlay's scratch folder."""
    if os.getuid() == 0:
        for sub in keys.RUN_JOB_DIRS:
            with contextlib.suppress(FileNotFoundError):
                if chown_tree(run_dir / sub, 0, 0):
                    say(
                        f"warning: {sub}/ holds folders deeper than {MAX_CHOWN_DEPTH} levels: "
                        "those are left owned by the job's user"
                    )
    with contextlib.suppress(FileNotFoundError):
        remove_tree(run_dir / keys.RUN_OVERLAY_DIR)  # the kernel's scratch


def finalize(
    backend: Backend | None,
    run_dir: Path,
    *,
    status: str,
    exit_code: int | None,
    reason: str | None,
    card: CardSettings | None = None,
    say: Say = quiet,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Finish the record once (a second caller finds it final and leaves it), then tidy up."""
    with run_lock(run_dir):
        record = read_record(run_dir)
        if record["status"] in FINAL_STATES:
            return record
        job = (record.get("container") or {}).get("id")
        unfetched = (
            collect(backend, str(job), run_dir, say) if backend is not None and job else None
        )
        record["reason"] = reason
        record["fetched"] = unfetched is None
        if unfetched is not None:
            warnings = [*warnings, f"{UNFETCHED} ({unfetched}); {_kept(record['run_id'])}"]
        with storage_errors(
            f"finishing the record of run {record['run_id']}",
            "free space in the runs directory, then run `reprise ls` (or `reprise wait "
            f"{record['run_id']}`) to finish it; the previous run.json is intact",
        ):
            _complete(run_dir, record, status, exit_code, warnings, say)
    for note in record.get("warnings") or []:
        say(f"warning: {note}")
    if backend is not None and job and record.get("fetched", True):
        with contextlib.suppress(EngineError):
            backend.remove(str(job))
    render_card_safely(run_dir, card, say)
    return record


def render_card_safely(run_dir: Path, card: CardSettings | None, say: Say) -> None:
    """A broken card template must not lose a finished run: warn, and go on."""
    try:
        write_card(run_dir, card=card)
    except (OSError, RepriseError) as exc:
        say(f"warning: the model card could not be rendered: {exc}")


def outcome(result: JobExit, memory_limit: str | None) -> tuple[str, int | None, str | None]:
    """(status, exit code, reason) from how the job ended."""
    if result.oom_killed:
        limit = f" (memory limit {memory_limit})" if memory_limit else ""
        return "failed", result.status_code, f"out of memory{limit}: the kernel killed the job"
    status = "succeeded" if result.status_code == 0 else "failed"
    return status, result.status_code, result.error
