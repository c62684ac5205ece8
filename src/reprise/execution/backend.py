"""The seam between a run's lifecycle and where it executes.

A :class:`Backend` stages a job's inputs, creates and starts it, streams its output, waits for
it, inspects it, brings its outputs back into the local run directory and removes it. The run
lifecycle (``commands.run``, ``commands.lifecycle``, ``commands.reproduce``) uses only this
interface; each backend is one module beside this one.

Jobs are named by the id the backend gives them (a container id for Docker engines), which the
run records as soon as it exists, so that a later CLI can pick the job up again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.core.errors import UsageError
from reprise.core.progress import Say
from reprise.core.resources import Resources


@dataclass(frozen=True)
class DataInput:
    """A dataset the job reads: a host file or folder, read-only at ``/workspace/data/<name>``."""

    name: str
    source: Path
    is_file: bool


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one job; a pure value.

    ``run_dir`` is the local run directory: the job writes its subfolders named in
    ``writable`` (and nothing else of it); ``config`` and ``code`` are read-only inputs. With
    ``work``, the job's working directory is the code with a writable layer over it, whose
    writes land in that subfolder of the run (the code itself is never changed); ``workdir``
    is the project's folder within the code, where the command starts.
    """

    image: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    run_dir: Path
    writable: tuple[str, ...]
    config: Path
    code: Path
    user: str
    labels: Mapping[str, str]
    data: tuple[DataInput, ...] = ()
    gpus: str | None = None
    resources: Resources = field(default_factory=Resources)
    work: str | None = None
    workdir: str = ""
    network: str = "none"


@dataclass(frozen=True)
class JobExit:
    """How a job ended."""

    status_code: int
    oom_killed: bool = False
    error: str | None = None
    interrupted: bool = False  # ended from outside the job (a scheduler cancelled it)


@dataclass(frozen=True)
class JobState:
    """What a backend knows of a job now: ``phase`` is "created" (not started yet), "running"
    or "ended" (then ``exit`` says how)."""

    phase: str
    exit: JobExit | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.phase == "running"

    @property
    def ended(self) -> bool:
        return self.phase == "ended"


class Backend(ABC):
    """Where runs execute. Failures of the backend itself raise EngineError (exit 3); a job
    that vanished raises JobGoneError."""

    @property
    @abstractmethod
    def security(self) -> dict[str, Any]:
        """The isolation every job gets (network, privileges, capabilities), for the record."""

    @property
    @abstractmethod
    def executor(self) -> dict[str, Any]:
        """Where jobs run, for the record: ``kind`` (local, remote) and ``host``."""

    def for_rerun(self, executor: Mapping[str, Any]) -> Backend:
        """This backend set up as a recorded run's ``executor`` was, for its rerun (a Slurm
        job's layout); most backends need nothing."""
        return self

    def plan(self, spec: JobSpec) -> str:
        """What would be submitted for ``spec``, as text (``--dry-run``)."""
        raise UsageError(
            "--dry-run prints the batch script of a run on Slurm: it goes with --slurm",
            hint="for the image, reprise build --dry-run prints its Dockerfile",
        )

    @abstractmethod
    def describe_host(self, image: str | None = None) -> dict[str, Any]:
        """The machine jobs run on: hostname, CPU, GPUs and driver, engine version (``image``
        may be used to look from inside a container)."""

    def rank_targets(self, run_dir: Path, record: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """What each rank of a finished run ran on (``core.nodetarget.rank_views``), for runs
        spread over nodes; None: the run's one machine is its record's "host"."""
        return None

    def node_targets(self) -> list[dict[str, Any]] | None:
        """What each rank of a run about to start would run on, as far as the nodes can be
        asked before the job (``--strict`` refuses on it); None: nothing beyond
        describe_host."""
        return None

    @abstractmethod
    def has_image(self, image_id: str) -> bool:
        """Whether the image with this id is where jobs run."""

    @abstractmethod
    def ensure_image(self, image_id: str, refs: Sequence[str], say: Say) -> str:
        """Make the image with this id be where jobs run: already there, else pulled by one
        of ``refs`` (proven by its id), else however the backend can; says how."""

    @abstractmethod
    def check(self, spec: JobSpec) -> None:
        """Refuse early (before any run directory exists) what the backend cannot run."""

    @abstractmethod
    def create(self, spec: JobSpec) -> str:
        """Stage the inputs and create the job (not started); returns its id."""

    @abstractmethod
    def attach(self, job: str) -> Iterator[bytes]:
        """The job's output from its very start, as it comes; opened before :meth:`start`."""

    @abstractmethod
    def start(self, job: str) -> None: ...

    @abstractmethod
    def logs(self, job: str, *, follow: bool) -> Iterator[bytes]:
        """The job's whole output so far (and, with ``follow``, until it ends)."""

    @abstractmethod
    def wait(self, job: str) -> JobExit:
        """Block until the job ends."""

    @abstractmethod
    def state(self, job: str) -> JobState | None:
        """The job's state, or None when the backend no longer knows it."""

    @abstractmethod
    def stop(self, job: str, *, timeout: int) -> None: ...

    @abstractmethod
    def collect(self, job: str, run_dir: Path, say: Say) -> None:
        """Bring what the job wrote into the local run directory (once it has ended)."""

    @abstractmethod
    def remove(self, job: str) -> None:
        """Remove the ended job and what was staged for it."""

    @abstractmethod
    def jobs(self) -> list[str]:
        """Every job reprise started here that still exists (running or not)."""

    @abstractmethod
    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        """Run a short helper command in ``image`` (no network) with each of ``inputs``
        read-only at ``/in/<name>``; returns its standard output."""
