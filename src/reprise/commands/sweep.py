"""`reprise run -m`: a sweep. Every run's inputs are checked before anything is built; the
image is built (or reused) once; the runs go one after another, or ``jobs`` at a time, each
recorded with the sweep's id, its place in it and its size.

Ctrl-C stops every run that has started (each recorded `interrupted`, as `reprise stop`
does) and starts no more.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reprise.commands.build import RunImage
from reprise.commands.inputs import RunInputs, prepare_run
from reprise.commands.lifecycle import follow, request_stop
from reprise.commands.run import deferred_interrupt, execute, start
from reprise.core import names, sweep
from reprise.core.envvars import RunEnv
from reprise.core.errors import EngineError, UsageError
from reprise.core.progress import Say
from reprise.core.resources import Resources
from reprise.edges.project import Project
from reprise.edges.runstore import read_record
from reprise.execution.backend import Backend

MAX_JOBS = 64


@dataclass(frozen=True)
class SweepResult:
    id: str
    run_dirs: tuple[Path, ...]
    planned: int  # how many runs the sweep has (more than run_dirs when it was cut short)


def plan(
    project: Project,
    overrides: Sequence[str],
    *,
    sweep_id: str,
    **run_args: Any,
) -> list[RunInputs]:
    """Each run's inputs, checked (config keys, values, seeds) before anything is built."""
    combos = sweep.expand(overrides, seed_flag=run_args.get("seed") is not None)
    return [
        replace(
            prepare_run(project, overrides=combo, **run_args),
            sweep={"id": sweep_id, "index": i, "size": len(combos)},
        )
        for i, combo in enumerate(combos)
    ]


def launch_sweep(
    project: Project,
    *,
    overrides: Sequence[str],
    jobs: int,
    seed: int | None,
    command: Sequence[str] | None,
    allow_dirty: bool,
    gpus: str | None,
    threads: int | None,
    env: RunEnv,
    resources: Resources,
    say: Say,
    host: str | None = None,
    context: str | None = None,
    determinism: str | None = None,
) -> SweepResult:
    """`reprise run -m`: check every run, build once, run them all. Returns the sweep's id
    and its run directories (each run.json holds its status)."""
    from reprise.commands.build import check_build_settings
    from reprise.commands.prepare import with_prepared
    from reprise.commands.run import connect_and_build
    from reprise.edges.project import read_lock
    from reprise.execution import resolve_target

    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"-j takes 1 to {MAX_JOBS} runs at a time, not {jobs}")
    check_build_settings(project.settings)
    target = resolve_target(host=host, context=context, setting=project.settings.host)
    lock = read_lock(project)
    sweep_id = names.new_sweep_id()
    planned = plan(
        project,
        overrides,
        sweep_id=sweep_id,
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
    varying = sweep.varying(overrides)
    say(f"sweep {sweep_id}: {len(planned)} runs, {min(jobs, len(planned))} at a time")
    backend, _, image = connect_and_build(project, target, lock, say)
    s = project.settings
    ready = [
        with_prepared(backend, inputs, image, s.prepare, ca_bundle=s.ca_bundle, say=say)
        for inputs in planned
    ]
    runner = _Sweep(backend, image, ready, varying, say)
    done = runner.one_by_one() if jobs == 1 else runner.at_once(jobs)
    return SweepResult(sweep_id, tuple(done), len(planned))


class _Sweep:
    def __init__(
        self,
        backend: Backend,
        image: RunImage,
        inputs: list[RunInputs],
        varying: list[str],
        say: Say,
    ) -> None:
        self.backend, self.image, self.inputs, self.say = backend, image, inputs, say
        self.varying = varying
        self.started: list[Path] = []
        self.cancel = threading.Event()
        self.lock = threading.Lock()

    def _label(self, inputs: RunInputs) -> str:
        index = int((inputs.sweep or {}).get("index", 0))
        return f"[{index + 1}/{len(self.inputs)}] {sweep.label(inputs.overrides, self.varying)}"

    def _ended(self, inputs: RunInputs, run_dir: Path) -> None:
        record = read_record(run_dir)
        self.say(f"{self._label(inputs)}: {record['status']} ({record['run_id']})")

    def one_by_one(self) -> list[Path]:
        """Each run in the foreground, its output on the terminal; Ctrl-C stops the one
        running (recorded `interrupted`) and starts no more."""
        for inputs in self.inputs:
            self.say(f"{self._label(inputs)}: starting")
            run_dir = execute(self.backend, inputs, self.image, say=self.say)
            self.started.append(run_dir)
            self._ended(inputs, run_dir)
        return self.started

    def at_once(self, jobs: int) -> list[Path]:
        """``jobs`` runs at a time, their output to their logs only."""
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="reprise-sweep")
        futures: list[Future[Path | None]] = [pool.submit(self._one, i) for i in self.inputs]
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # a worker's error ends the sweep, as in one_by_one
        except BaseException:
            # Another Ctrl-C while the started runs are stopped is held until they are.
            with deferred_interrupt():
                self.cancel.set()
                pool.shutdown(wait=False, cancel_futures=True)
                with self.lock:
                    started = list(self.started)
                for run_dir in started:
                    self._stop(run_dir)
                pool.shutdown(wait=True)  # each worker finishes its run's record
            for future in futures:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    self.say(f"warning: a run of the sweep ended in error: {future.exception()}")
            raise
        pool.shutdown(wait=True)
        return sorted(self.started, key=lambda d: int(read_record(d)["sweep"]["index"]))

    def _one(self, inputs: RunInputs) -> Path | None:
        if self.cancel.is_set():
            return None
        self.say(f"{self._label(inputs)}: starting")
        started: list[Path] = []
        try:
            run_dir, _ = start(
                self.backend, inputs, self.image, say=self.say, attach=False, started=started
            )
        finally:
            with self.lock:
                self.started += started
        if self.cancel.is_set():
            self._stop(run_dir)
        follow(
            self.backend,
            run_dir,
            say=self.say,
            echo=False,
            on_interrupt="stop",
            secrets=inputs.env.secret_values(),
            card=inputs.card,
        )
        self._ended(inputs, run_dir)
        return run_dir

    def _stop(self, run_dir: Path) -> None:
        """Stop a started run, recorded `interrupted` by whoever finishes it."""
        if not request_stop(run_dir):
            return
        job = (read_record(run_dir).get("container") or {}).get("id")
        if job:
            with contextlib.suppress(EngineError):
                self.backend.stop(str(job), timeout=5)


def summary(result: SweepResult) -> dict[str, Any]:
    """How the sweep ended: counts by status."""
    counts: dict[str, int] = {}
    for run_dir in result.run_dirs:
        status = str(read_record(run_dir)["status"])
        counts[status] = counts.get(status, 0) + 1
    return {
        "sweep": result.id,
        "runs": len(result.run_dirs),
        "planned": result.planned,
        "statuses": counts,
    }
