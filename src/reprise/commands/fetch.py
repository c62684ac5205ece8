"""`reprise fetch RUN`: bring a finished run's outputs back from where it ran, when that
failed as it ended (the host went away, the disk filled): its container was kept there."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from reprise.commands.finish import UNFETCHED, collect, record_outputs, render_card_safely, run_lock
from reprise.commands.lifecycle import owned_by
from reprise.core.cardsettings import CardSettings
from reprise.core.errors import EngineError, JobGoneError, UsageError
from reprise.core.progress import Say
from reprise.edges.runstore import read_record


def fetch(run_dir: Path, *, card: CardSettings | None, say: Say) -> dict[str, Any]:
    """Fetch the outputs of the run in ``run_dir`` (a no-op when they are here already),
    then record them (manifest, runtime record, config read) and remove the container."""
    from reprise.execution import backend_for

    record = read_record(run_dir)
    run_id = record["run_id"]
    if record.get("fetched") is not False:
        if record["status"] == "running":
            raise UsageError(
                f"run {run_id} is still running", hint=f"reprise wait {run_id} fetches its outputs"
            )
        say(f"run {run_id}'s outputs are here already")
        return record
    job = str((record.get("container") or {}).get("id") or "")
    backend = backend_for(record)
    state = backend.state(job) if job else None
    if state is None or not owned_by(state.labels, record):
        raise JobGoneError(
            f"run {run_id}'s container is gone from where it ran: its outputs are lost",
            hint="reproduce the run elsewhere to make them again: reprise reproduce " + run_id,
        )
    with run_lock(run_dir):
        record = read_record(run_dir)
        if record.get("fetched") is not False:
            return record
        failed = collect(backend, job, run_dir, say)
        if failed is not None:
            raise EngineError(f"{UNFETCHED}: {failed}", hint=f"try again: reprise fetch {run_id}")
        record["fetched"] = True
        notes = [w for w in record.get("warnings") or [] if not w.startswith(UNFETCHED)]
        record["warnings"] = notes
        record_outputs(run_dir, record, notes)
    say(f"fetched run {run_id}: {record['manifest']['files']} files recorded")
    with contextlib.suppress(EngineError):
        backend.remove(job)
    render_card_safely(run_dir, card, say)
    return record
