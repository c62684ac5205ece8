"""A backend in memory (cog's dockertest, for reprise's seam): jobs are scripts of what a job
would do (print lines, write files into its writable folders, plant links, exit, be OOM-killed,
vanish), so that every path of run, lifecycle and reproduce has a fast test without a daemon."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.core.errors import EngineError, ImageUnavailableError, JobGoneError
from reprise.core.progress import Say
from reprise.execution.backend import Backend, JobExit, JobSpec, JobState

# What a fake job does once started, given the run directory it may write.
Behaviour = Callable[[Path], None]


@dataclass
class FakeJob:
    spec: JobSpec
    output: list[bytes]
    exit: JobExit
    behaviour: Behaviour | None
    phase: str = "created"
    removed: bool = False


@dataclass
class FakeBackend(Backend):
    """Runs nothing: ``script`` decides what the next job prints, writes and how it ends."""

    output: Sequence[str] = ("hello",)
    exit: JobExit = field(default_factory=lambda: JobExit(0))
    behaviour: Behaviour | None = None
    images: set[str] | None = None  # the images it has; None: every one
    vanish_on_wait: bool = False
    start_error: str | None = None  # what the engine says when the job cannot start
    engine_errors_on_wait: int = 0
    collect_error: str | None = None  # what fetching the outputs fails with
    host: dict[str, Any] = field(
        default_factory=lambda: {
            "hostname": "fake",
            "arch": "x86_64",
            "cpu": "Fake CPU",
            "gpu": {"present": False, "gpus": []},
        }
    )
    jobs_made: dict[str, FakeJob] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def security(self) -> dict[str, Any]:
        return {"network": "none", "fake": True}

    @property
    def executor(self) -> dict[str, Any]:
        return {"kind": "local", "host": None}

    def describe_host(self, image: str | None = None) -> dict[str, Any]:
        return dict(self.host)

    def has_image(self, image_id: str) -> bool:
        return self.images is None or image_id in self.images

    def ensure_image(self, image_id: str, refs: Sequence[str], say: Say) -> str:
        if self.has_image(image_id):
            return "local"
        raise ImageUnavailableError(f"the fake backend pulls nothing ({', '.join(refs)})")

    def check(self, spec: JobSpec) -> None:
        return None

    def create(self, spec: JobSpec) -> str:
        job = f"{next(self._ids):064x}"
        lines = [f"{line}\n".encode() for line in self.output]
        self.jobs_made[job] = FakeJob(spec, lines, self.exit, self.behaviour)
        return job

    def _job(self, job: str) -> FakeJob:
        found = self.jobs_made.get(job)
        if found is None or found.removed:
            raise JobGoneError(f"container {job[:12]} no longer exists")
        return found

    def attach(self, job: str) -> Iterator[bytes]:
        fake = self._job(job)
        return iter(fake.output)

    def start(self, job: str) -> None:
        if self.start_error:
            raise EngineError(f"could not start container {job[:12]}: {self.start_error}")
        fake = self._job(job)
        fake.phase = "ended"
        if fake.behaviour is not None:
            fake.behaviour(fake.spec.run_dir)

    def logs(self, job: str, *, follow: bool) -> Iterator[bytes]:
        return iter(self._job(job).output)

    def wait(self, job: str) -> JobExit:
        if self.engine_errors_on_wait:
            self.engine_errors_on_wait -= 1
            raise EngineError("lost contact with the engine while waiting (fake)")
        if self.vanish_on_wait:
            self.jobs_made[job].removed = True
        return self._job(job).exit

    def state(self, job: str) -> JobState | None:
        fake = self.jobs_made.get(job)
        if fake is None or fake.removed:
            return None
        env = dict(fake.spec.environment)
        return JobState(
            fake.phase, fake.exit if fake.phase == "ended" else None, env, dict(fake.spec.labels)
        )

    def stop(self, job: str, *, timeout: int) -> None:
        self.stopped.append(job)

    def collect(self, job: str, run_dir: Path, say: Say) -> None:
        if self.collect_error:
            raise EngineError(self.collect_error)

    def remove(self, job: str) -> None:
        if job in self.jobs_made:
            self.jobs_made[job].removed = True

    def jobs(self) -> list[str]:
        return [j for j, fake in self.jobs_made.items() if not fake.removed]

    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        return '{"loadable": false, "error": "the fake backend runs no tools"}'


def writes(files: Mapping[str, bytes]) -> Behaviour:
    """A job that writes ``files`` (paths relative to the run directory)."""

    def behave(run_dir: Path) -> None:
        for rel, data in files.items():
            path = run_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return behave


def plants(links: Mapping[str, str]) -> Behaviour:
    """A job that replaces paths of its run directory with symlinks to ``links``' targets."""

    def behave(run_dir: Path) -> None:
        for rel, target in links.items():
            path = run_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                path.unlink()
            os.symlink(target, path)

    return behave
