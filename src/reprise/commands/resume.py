"""`reprise resume RUN`: continue a failed, interrupted or lost run from its checkpoint.

The new run uses the recorded image (by id), commit, frozen config, seed, thread count,
command and determinism; it starts with what the interrupted run left in its job folders
(checkpoints, outputs, metrics; never its console log), and ``REPRISE_RESUME=1`` tells the
runtime's ``Checkpoints.resume()`` to load ``checkpoints/last.pt``. Its record names the run
and the checkpoint (by hash) it continues. `reprise reproduce` of the resumed run reruns it
from the start, uninterrupted, and compares.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import IO

from reprise.commands.reproduce import (
    ReproduceOptions,
    check_data,
    ensure_code,
    prepared_paths,
    recorded_code,
    rerun_inputs,
    unnamed_data,
)
from reprise.commands.rerun_image import locate_image, recorded_image
from reprise.commands.run import execute
from reprise.core import keys
from reprise.core.errors import UsageError
from reprise.core.progress import Say
from reprise.edges.hashing import hash_fd
from reprise.edges.runfiles import open_regular
from reprise.edges.runstore import read_record
from reprise.execution.backend import Backend

RESUMABLE = ("failed", "interrupted", "lost")
LAST = keys.RUN_LAST_CHECKPOINT


def _checkpoint_hash(run_dir: Path) -> str | None:
    """The blake3 of the interrupted run's last.pt: a regular file, opened without following
    a link (the job wrote it)."""
    try:
        fd = open_regular(run_dir, LAST)
    except OSError:
        return None
    try:
        return "blake3:" + hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def resume(
    backend: Backend,
    run_dir: Path,
    options: ReproduceOptions,
    *,
    say: Say,
    detach: bool = False,
    console: IO[bytes] | None = None,
) -> Path:
    """Start (and unless ``detach``, follow) the run that continues ``run_dir``'s."""
    record = read_record(run_dir)
    run_id = record["run_id"]
    if record["status"] not in RESUMABLE:
        raise UsageError(
            f"run {run_id} is {record['status']}: only a failed, interrupted or lost run is "
            "resumed",
            hint=f"reprise wait {run_id}" if record["status"] == "running" else None,
        )
    if record.get("fetched") is False:
        raise UsageError(
            f"run {run_id}'s files are still where it ran", hint=f"reprise fetch {run_id}"
        )
    checkpoint = _checkpoint_hash(run_dir)
    if checkpoint is None:
        raise UsageError(
            f"run {run_id} left no {LAST} (a regular file) to resume from",
            hint="save checkpoints with reprise_runtime.Checkpoints (last.pt after each save), "
            f"or rerun it from the start: reprise reproduce {run_id}",
        )
    code = recorded_code(record, run_dir, options.repo)
    unnamed_data(record, options)
    ensure_code(code, run_dir.parent.parent, options.repo)
    inputs = rerun_inputs(record, run_dir, code)
    image_id, source = locate_image(backend, record, options.registry, say)
    image = recorded_image(record, run_dir, image_id, source)
    paths = {**prepared_paths(backend, record, inputs, image, options, say), **options.data_paths}
    data, changed = check_data(record, paths, options.allow_data_change, say)
    inputs = dataclasses.replace(
        inputs,
        data=data,
        card=options.card,
        reproduces=None,
        seed_source="resume",
        resumes={"run_id": run_id, "checkpoint": LAST, "checkpoint_hash": checkpoint},
        resume_dir=run_dir,
    )
    say(f"resuming run {run_id} from {LAST} ({checkpoint[:19]}...)")
    if changed:
        say(f"warning: dataset(s) {', '.join(changed)} changed since the run (--allow-data-change)")
    return execute(backend, inputs, image, say=say, console=console, detach=detach)


def resume_run(
    run_dir: Path,
    options: ReproduceOptions,
    *,
    host: str | None,
    context: str | None,
    say: Say,
    detach: bool,
) -> Path:
    """`reprise resume`: on the engine ``host`` or ``context`` names (else the settings' and
    the docker environment's)."""
    from reprise.execution import open_backend, resolve_target

    setting = options.settings.host if options.settings else None
    backend = open_backend(resolve_target(host=host, context=context, setting=setting))
    return resume(backend, run_dir, options, say=say, detach=detach)
