"""Runs on a Slurm cluster whose nodes share the runs directory with this machine.

A job is a batch script (``core.sbatch``) kept as ``slurm/job.sbatch`` in the run directory,
submitted held and released once the run records its job id. Each node runs the run's image
in its container runtime (its own Docker engine, Podman, Apptainer or pyxis); the job writes the run's
folders where it is, so nothing is brought back. Its output is each rank's log and the batch
step's (``execution.slurmlogs``); its state is what ``scontrol`` (or ``sacct``) says. The image
is built here; Docker and Podman nodes load it from a docker-archive beside the runs
(``<runs-dir>/.cache/images/``), Apptainer and pyxis nodes pull it by its digest.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.core import keys, names
from reprise.core.errors import EngineError, InvalidNameError, StorageError, UsageError
from reprise.core.nodetarget import rank_views
from reprise.core.progress import Say
from reprise.core.record import load_json
from reprise.core.sbatch import (
    ARCHIVE_DIR,
    SCRIPT,
    SLURM_DIR,
    BatchJob,
    Bind,
    env_names,
    job_environment,
    render_sbatch,
    security,
    submit_env,
)
from reprise.core.slurm import (
    ENGINE_RUNTIMES,
    INTERRUPTED,
    SlurmJob,
    SlurmOptions,
    options_from_record,
    parse_node_host,
    parse_nodes,
    parse_sacct_job,
    parse_scontrol_job,
)
from reprise.edges import slurmctl
from reprise.edges.container_config import Mount, OverlayMount
from reprise.edges.docker import Engine
from reprise.edges.runfiles import read_regular, remove_entry, replace_file
from reprise.edges.runstore import atomic_write
from reprise.execution.backend import Backend, JobExit, JobSpec, JobState
from reprise.execution.local import LocalBackend, job_mounts, working_dir
from reprise.execution.slurmlogs import (
    batch_exit,
    job_requeues,
    merged_output,
    node_hosts,
    node_oom,
    rank_records,
)

JOB_PREFIX = "reprise-"
STOP_WAIT_S = 90.0
POLL_S = 1.0
RANK_LIMIT = 4 << 20  # a rank's runtime record, as a local run's
# Slurm states whose job ended for a reason outside it: no exit code of the job's own.
_NOT_THE_JOBS = frozenset({"NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", *INTERRUPTED})


class SlurmBackend(Backend):
    """Jobs on the Slurm cluster this machine's Slurm client talks to."""

    def __init__(self, local: Callable[[], Engine], options: SlurmOptions | None = None) -> None:
        self._local_factory = local
        self._engine: Engine | None = None
        self.options = options or SlurmOptions()
        self._cluster: tuple[str | None, str | None] | None = None
        self._run_dirs: dict[str, Path] = {}

    # --- what it is -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """This machine's engine: images are built and kept here."""
        if self._engine is None:
            self._engine = self._local_factory()
        return self._engine

    def _cluster_info(self) -> tuple[str | None, str | None]:
        if self._cluster is None:
            self._cluster = slurmctl.cluster()
        return self._cluster

    @property
    def cluster(self) -> str:
        name = self._cluster_info()[0] or "cluster"
        try:
            return names.host(f"slurm://{name}", "Slurm's ClusterName")
        except InvalidNameError:
            return "slurm://cluster"

    @property
    def security(self) -> dict[str, Any]:
        return security(self.options)

    @property
    def executor(self) -> dict[str, Any]:
        return {"kind": "slurm", "host": self.cluster, "slurm": self.options.to_record()}

    def for_rerun(self, executor: Mapping[str, Any]) -> Backend:
        recorded = options_from_record(executor.get("slurm"))
        return self if recorded is None else SlurmBackend(self._local_factory, recorded)

    def describe_host(self, image: str | None = None) -> dict[str, Any]:
        """The partition's nodes, as the controller knows them (their CPU models are in each
        rank's runtime record)."""
        name, version = self._cluster_info()
        wanted = set(slurmctl.partition_nodes(self.options.partition))
        nodes = [n for n in parse_nodes(slurmctl.show_nodes()) if n["name"] in wanted]
        first = nodes[0] if nodes else {}
        gpus = list(first.get("gpus") or [])
        return {
            "hostname": self.cluster,
            "address": self.cluster,
            "arch": first.get("arch"),
            "cpu": None,
            "cpu_count": first.get("cpus"),
            "memory_bytes": (first.get("memory_mib") or 0) << 20 or None,
            "docker_version": None,
            "gpu": {"present": bool(gpus), "gpus": gpus},
            "slurm": {
                "cluster": name,
                "version": version,
                "partition": self.options.partition,
                "nodes": [n["name"] for n in nodes],
            },
        }

    def rank_targets(self, run_dir: Path, record: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """Each rank's node (runtime.json's "nodes") and its own record (runtime/rank-K.json)."""
        executor = record.get("executor") or {}
        layout = (
            options_from_record(executor.get("slurm")) if executor.get("kind") == "slurm" else None
        )
        if layout is None:
            return None
        ranks = rank_records(run_dir, layout.world_size, RANK_LIMIT)
        nodes = (record.get("runtime") or {}).get("nodes")
        return rank_views(
            nodes, ranks, world_size=layout.world_size, procs_per_node=layout.procs_per_node
        )

    def node_targets(self) -> list[dict[str, Any]] | None:
        """The nodes a job of this layout would get, asked now (a short job step on each): CPU
        model and GPU models; the CPU count a step sees is its allocation's, so not asked."""
        o = self.options
        lines = slurmctl.describe_nodes(nodes=o.nodes, partition=o.partition, account=o.account)
        nodes = [parse_node_host(line.replace("\t", "\n")) for line in lines]
        views = rank_views(nodes, {}, world_size=o.world_size, procs_per_node=o.procs_per_node)
        return [{**view, "cpu_count": None} for view in views]

    # --- images -----------------------------------------------------------------------------
    def has_image(self, image_id: str) -> bool:
        return LocalBackend(self.engine).has_image(image_id)

    def ensure_image(self, image_id: str, refs: Sequence[str], say: Say) -> str:
        """The image must be here first: Docker and Podman nodes load it from the runs
        directory, the other runtimes pull it by its digest."""
        return LocalBackend(self.engine).ensure_image(image_id, refs, say)

    def _digest_ref(self, image_id: str) -> str | None:
        attrs = self.engine.image_attrs(image_id) or {}
        for ref in attrs.get("RepoDigests") or []:
            with contextlib.suppress(InvalidNameError):
                return names.reference(str(ref), "image digest")
        return None

    def _archive(self, image_id: str, runs_dir: Path, say: Say) -> Path:
        """The image as a docker-archive beside the runs, written once (by its id)."""
        path = runs_dir.joinpath(*ARCHIVE_DIR) / f"{names.image_id(image_id)[7:]}.tar"
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"saving image {image_id[:19]} to {path} for the cluster's nodes")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            with tmp.open("wb") as fh:
                for chunk in self.engine.save(image_id):
                    fh.write(chunk)
            tmp.rename(path)
        except OSError as exc:
            raise StorageError(
                f"the image could not be saved to {path}: {exc.strerror or exc}"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return path

    # --- the job ----------------------------------------------------------------------------
    def batch_job(self, spec: JobSpec, *, archive: Path | None, image_ref: str | None) -> BatchJob:
        docker = self.options.runtime in ENGINE_RUNTIMES
        binds: list[Bind] = []
        work = None
        for mount in job_mounts(spec):
            if isinstance(mount, Mount):
                binds.append(Bind(mount.source, mount.target, mount.read_only))
            elif isinstance(mount, OverlayMount) and docker:
                work = mount.lower
        workdir = (
            working_dir(spec)
            if docker
            else keys.CONTAINER_CODE + (f"/{spec.workdir}" if spec.workdir else "")
        )
        return BatchJob(
            run_id=spec.labels.get(keys.LABEL_RUN_ID, spec.run_dir.name),
            run_dir=str(spec.run_dir.resolve()),
            image_id=spec.image,
            command=spec.command,
            env_names=env_names(job_environment(spec.environment, self.options)),
            binds=tuple(binds),
            workdir=workdir,
            user=spec.user,
            labels=spec.labels,
            threads=int(spec.environment.get(keys.ENV_THREADS) or 1),
            resources=spec.resources,
            work=work,
            owner=spec.user if os.getuid() == 0 and work else None,
            image_ref=image_ref,
            archive=str(archive) if archive else None,
        )

    def plan(self, spec: JobSpec) -> str:
        runs_dir = spec.run_dir.parent.parent
        archive = runs_dir.joinpath(*ARCHIVE_DIR) / f"{spec.image[7:]}.tar"
        job = self.batch_job(spec, archive=archive, image_ref=self._digest_ref(spec.image))
        return render_sbatch(job, self.options)

    def check(self, spec: JobSpec) -> None:
        """Refuse before anything exists: a script that cannot be written for these paths, an
        image the runtime cannot pull, a partition with too few nodes, a runs directory
        some node does not see."""
        self.plan(spec)
        nodes = slurmctl.partition_nodes(self.options.partition)
        if len(nodes) < self.options.nodes:
            where = (
                f"partition {self.options.partition}"
                if self.options.partition
                else "the default partition"
            )
            raise UsageError(
                f"--nodes {self.options.nodes}: {where} has {len(nodes)} node(s)",
                hint="ask for fewer nodes, or another --partition",
            )
        self._check_shared(spec.run_dir.parent.parent)

    def _check_shared(self, runs_dir: Path) -> None:
        o = self.options
        slurmctl.check_shared(
            runs_dir, self.cluster[len("slurm://") :], o.nodes, o.partition, o.account
        )

    def create(self, spec: JobSpec) -> str:
        """Write the batch script into the run directory and submit it held."""
        runs_dir = spec.run_dir.parent.parent
        archive = image_ref = None
        if self.options.runtime in ENGINE_RUNTIMES:
            archive = self._archive(spec.image, runs_dir, lambda _: None)
        else:
            image_ref = self._digest_ref(spec.image)
        text = render_sbatch(
            self.batch_job(spec, archive=archive, image_ref=image_ref), self.options
        )
        script = spec.run_dir / SCRIPT
        (spec.run_dir / SLURM_DIR).mkdir(exist_ok=True)
        atomic_write(script, text, durable=False)
        env = submit_env(os.environ, job_environment(spec.environment, self.options))
        job = slurmctl.submit(script, hold=True, env=env)
        self._run_dirs[job] = spec.run_dir
        return job

    def start(self, job: str) -> None:
        slurmctl.release(job)

    def _job(self, job: str) -> SlurmJob | None:
        text = slurmctl.show_job(job)
        found = parse_scontrol_job(text) if text is not None else None
        if found is None:
            out = slurmctl.sacct_job(job)
            found = parse_sacct_job(out, job) if out else None
        return found

    def state(self, job: str) -> JobState | None:
        found = self._job(job)
        if found is None:
            return None
        labels = {}
        if found.name and found.name.startswith(JOB_PREFIX):
            labels[keys.LABEL_RUN_ID] = found.name[len(JOB_PREFIX) :]
        if found.work_dir:
            labels[keys.LABEL_RUN_DIR] = found.work_dir
            self._run_dirs.setdefault(job, Path(found.work_dir))
        if found.phase != "ended":
            return JobState(found.phase, None, {}, labels)
        return JobState("ended", self._exit(found), {}, labels)

    def _exit(self, found: SlurmJob) -> JobExit:
        run_dir = self._run_dirs.get(found.job_id)
        oom = found.state == "OUT_OF_MEMORY" or (run_dir is not None and node_oom(run_dir))
        code = found.status_code
        if run_dir is not None and found.state not in _NOT_THE_JOBS and code < 0:
            code = batch_exit(run_dir, code)
        if code == 0 and found.state != "COMPLETED":  # ended by Slurm (a node lost, a limit)
            code = -1  # not the job's own exit: never read as success
        error = found.describe() if found.state in _NOT_THE_JOBS or found.signal else None
        return JobExit(code, oom, error, interrupted=found.state in INTERRUPTED)

    def _run_dir(self, job: str) -> Path:
        if job not in self._run_dirs:
            self.state(job)
        run_dir = self._run_dirs.get(job)
        if run_dir is None or not run_dir.is_absolute() or not (run_dir / SLURM_DIR).is_dir():
            raise EngineError(f"Slurm job {job} is not a reprise run's (no run directory)")
        return run_dir

    def attach(self, job: str) -> Iterator[bytes]:
        return self.logs(job, follow=True)

    def logs(self, job: str, *, follow: bool) -> Iterator[bytes]:
        run_dir = self._run_dir(job)

        def ended() -> bool:
            state = self.state(job)
            return state is None or state.ended

        return merged_output(run_dir, self.options.world_size, ended=ended if follow else None)

    def wait(self, job: str) -> JobExit:
        while True:
            state = self.state(job)
            if state is None:
                raise EngineError(f"Slurm job {job} is no longer known to the controller")
            if state.exit is not None:
                return state.exit
            time.sleep(POLL_S)

    def stop(self, job: str, *, timeout: int) -> None:
        """scancel, then wait (a while) for the nodes to stop the job's containers."""
        slurmctl.cancel(job)
        deadline = time.monotonic() + timeout + STOP_WAIT_S
        while time.monotonic() < deadline:
            state = self.state(job)
            if state is None or state.ended:
                return
            time.sleep(POLL_S)

    def collect(self, job: str, run_dir: Path, say: Say) -> None:
        """Nothing to bring back (the nodes wrote the run directory): rank 0's runtime record
        becomes the run's, as a local run's is, with what each node said it is ("nodes") and,
        when Slurm requeued the job, each restart and its reason ("requeues"; the job id is
        the same throughout, and the record is of its last attempt). Under Slurm no rank
        writes runtime.json: one found there is the job's own, never the run's (it could say
        any nodes and restarts), and is removed, so that without rank 0's record finishing
        says the runtime record is missing."""
        record = f"{keys.RUN_RUNTIME_DIR}/runtime.json"
        try:
            remove_entry(run_dir, record)  # first, whatever rank 0 left: it is not the run's
        except OSError as exc:  # runtime/ itself is no folder: finishing cannot read it either
            say(f"warning: could not remove the job's {record}: {exc.strerror or exc}")
        try:
            found = read_regular(run_dir, f"{keys.RUN_RUNTIME_DIR}/rank-0.json", RANK_LIMIT)
        except OSError:  # planted: no record of rank 0
            return
        if found is None or found[1]:
            return
        try:
            runtime = load_json(found[0], limit=RANK_LIMIT, what="runtime/rank-0.json")
        except ValueError:
            runtime = None
        data = found[0]
        if isinstance(runtime, dict):  # else passed on as it is: finishing says what is wrong
            runtime["nodes"] = node_hosts(run_dir, self.options.nodes)
            with contextlib.suppress(EngineError):  # the controller gone: no restarts known
                found_job = self._job(job)
                if found_job is not None and found_job.restarts:
                    runtime["requeues"] = job_requeues(run_dir, found_job.restarts)
            data = json.dumps(runtime, indent=2).encode()
        try:
            replace_file(run_dir, record, data)
        except OSError as exc:
            say(f"warning: could not write {record}: {exc.strerror or exc}")

    def remove(self, job: str) -> None:
        """Nothing: each node removes its container when its part ends."""
        return None

    def jobs(self) -> list[str]:
        return []

    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        return LocalBackend(self.engine).run_tool(image, command, inputs)
