"""The batch script of a run on Slurm: rendered from ``templates/slurm/<runtime>.sbatch.j2``
by :func:`render_sbatch`, from a :class:`BatchJob` and the run's
:class:`~reprise.core.slurm.SlurmOptions`. Pure.

One task per node; in it, one container of the run's image. With more than one rank, torchrun
starts the node's ranks, its rendezvous taken from Slurm's environment: the first node of the
allocation (by the address Slurm has for it; a one-node job's loopback, its container may have
no network) as the host, ``SLURM_NODEID`` as the node rank,
``SLURM_NNODES`` x ranks per node as the world size. Each rank's output goes to
``logs/rank-K.log`` and its runtime record to ``runtime/rank-K.json``; the batch step's own
output (Slurm's, the runtime's, torchrun's) to ``slurm/job.out``.

The run's variables never appear in the script: they travel in the submitting environment
(``--export=ALL``) and are passed into the container by name only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from reprise import __version__
from reprise.core import keys
from reprise.core.errors import UsageError
from reprise.core.resources import Resources
from reprise.core.slurm import ENGINE_RUNTIMES, SlurmOptions
from reprise.core.templating import render, template_text

# Where Slurm writes into the run directory (reprise's, never the job's).
SLURM_DIR = "slurm"
SCRIPT = f"{SLURM_DIR}/job.sbatch"
OUTPUT = f"{SLURM_DIR}/job.out"
EXIT = f"{SLURM_DIR}/exit"  # the batch step's exit status
RANK_LOG = "logs/rank-{rank}.log"
# A requeued job's later attempts: each rank's output apart from the first attempt's.
RESTART_LOG = "logs/rank-{rank}.restart-{restart}.log"
RANK_RECORD = f"{keys.RUN_RUNTIME_DIR}/rank-{{rank}}.json"
# Where images are saved beside the runs for Docker nodes that lack them (<hex>.tar).
ARCHIVE_DIR = (".cache", "images")
RANK_LOGS = "logs/rank-*.log"  # each rank's console: recorded, not compared (volatile)
# The node's own values of these reach the job (interfaces for gloo and NCCL to use).
# SLURM_RESTART_COUNT (set once a job is requeued) names a restarted attempt's rank logs.
SITE_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "SLURM_RESTART_COUNT")
# NCCL settings that change results: pinned for GPU runs, and recorded.
NCCL_PINNED = {"NCCL_ALGO": "Ring", "NCCL_PROTO": "Simple", "NCCL_NVLS_ENABLE": "0"}
# Paths written into the script: no quoting needed anywhere they go (#SBATCH lines, docker's
# --mount, apptainer's --bind, pyxis's --container-mounts), and no '%' (Slurm's patterns).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@=~/-]{0,4000}")
_DOMAIN = re.compile(r"[^/]*[.:][^/]*|localhost")


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class BatchJob:
    """One run's job on the cluster; a pure value (paths are absolute, as every node sees them)."""

    run_id: str
    run_dir: str
    image_id: str
    command: tuple[str, ...]
    env_names: tuple[str, ...]
    binds: tuple[Bind, ...]
    workdir: str
    user: str
    labels: Mapping[str, str]
    threads: int
    resources: Resources = field(default_factory=Resources)
    work: str | None = None  # the code, under the writable working directory (docker only)
    owner: str | None = None  # chown the working directory's upper layer to this (as root)
    image_ref: str | None = None  # REPO@sha256:..., for runtimes that pull by digest
    archive: str | None = None  # a docker-archive of the image, for nodes that lack it


def plain_path(path: str, what: str) -> str:
    if not _PLAIN_PATH.fullmatch(path) or "/../" in f"{path}/":
        raise UsageError(
            f"{what} {path!r} cannot go into a Slurm batch script: only letters, digits and "
            "'._+@=~/-' are taken in its paths",
            hint="choose a runs-dir (and dataset paths) without spaces, quotes, '%' or ','",
        )
    return path


def security(options: SlurmOptions) -> dict[str, object]:
    """The isolation each runtime gives the job, for the record."""
    network = "host" if options.nodes > 1 else "none"
    if options.runtime in ENGINE_RUNTIMES:
        return {"network": network, "no_new_privileges": True, "cap_drop": ["ALL"]}
    # Apptainer and enroot run the job as the submitting user, on the node's network.
    return {"network": "host", "no_new_privileges": True, "cap_drop": ["ALL"], "user": "submitter"}


def enroot_ref(ref: str) -> str:
    """An image reference as enroot takes it: the registry before '#'."""
    first, sep, rest = ref.partition("/")
    return f"{first}#{rest}" if sep and _DOMAIN.fullmatch(first) else ref


def rank_wrapper() -> str:
    """The shell each rank runs in: its output into logs/rank-K.log (logs/rank-K.restart-N.log
    in the Nth restart of a requeued job), its runtime record into runtime/rank-K.json (K:
    torchrun's RANK, 0 when there is one rank; a restart's record replaces the one before)."""
    run = keys.CONTAINER_RUN
    log = f"{run}/{RANK_LOG.format(rank='${RANK:-0}')}"
    again = f"{run}/{RESTART_LOG.format(rank='${RANK:-0}', restart='$SLURM_RESTART_COUNT')}"
    record = f"{run}/{RANK_RECORD.format(rank='${RANK:-0}')}"
    return (
        f'export {keys.ENV_RUNTIME_RECORD}="{record}"; log="{log}"; '
        f'[ "${{SLURM_RESTART_COUNT:-0}}" = 0 ] || log="{again}"; exec "$@" >>"$log" 2>&1'
    )


def launch(job: BatchJob, options: SlurmOptions, *, inside: bool) -> list[str]:
    """The container's command, as shell words: the rank wrapper, under torchrun when there
    is more than one rank. ``inside``: Slurm's variables are expanded in the container
    (pyxis), not by the node's shell before it starts."""
    ranks = ["sh", "-c", rank_wrapper(), "reprise-rank", *job.command]
    if options.world_size == 1:
        return [shlex.quote(w) for w in ranks]
    if inside:
        torchrun = (
            'exec torchrun --nnodes="$SLURM_NNODES" --node-rank="$SLURM_NODEID" '
            f"--nproc-per-node={options.procs_per_node} "
            '--master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" --no-python "$@"'
        )
        return [shlex.quote(w) for w in ["sh", "-c", torchrun, "reprise-node", *ranks]]
    return [
        "torchrun",
        '--nnodes="$SLURM_NNODES"',
        '--node-rank="$SLURM_NODEID"',
        f"--nproc-per-node={options.procs_per_node}",
        '--master-addr="$MASTER_ADDR"',
        '--master-port="$MASTER_PORT"',
        "--no-python",
        *(shlex.quote(w) for w in ranks),
    ]


def _docker_args(job: BatchJob, options: SlurmOptions) -> list[str]:
    """`docker run` flags with the hardening of a local run's container (see
    ``edges.container_config``), as shell words."""
    res = job.resources
    args = [
        f"--network {security(options)['network']}",
        "--security-opt no-new-privileges",
        "--cap-drop ALL",
        f"--pids-limit {res.pids_limit}",
    ]
    if res.memory:
        args.append(f"--memory {shlex.quote(res.memory)}")
    if res.shm_size:
        args.append(f"--shm-size {shlex.quote(res.shm_size)}")
    if res.cpus:
        args.append(f"--cpus {res.cpus}")
    args += [f"--user {shlex.quote(job.user)}", f"--workdir {shlex.quote(job.workdir)}"]
    args += [f"--label {shlex.quote(f'{k}={v}')}" for k, v in sorted(job.labels.items())]
    for bind in job.binds:
        ro = ",readonly" if bind.read_only else ""
        args.append(f"--mount type=bind,src={bind.source},dst={bind.target}{ro}")
    args += [f"--env {name}" for name in job.env_names]
    return args


def _binds(job: BatchJob, sep: str) -> str:
    return sep.join(f"{b.source}:{b.target}" + (":ro" if b.read_only else "") for b in job.binds)


def render_sbatch(job: BatchJob, options: SlurmOptions) -> str:
    """The whole batch script of ``job``."""
    run_dir = plain_path(job.run_dir, "the run directory")
    for bind in job.binds:
        plain_path(bind.source, "the path")
        plain_path(bind.target, "the container path")
    for path in (job.work, job.archive, job.workdir):
        if path is not None:
            plain_path(path, "the path")
    if options.runtime not in ENGINE_RUNTIMES and not job.image_ref:
        raise UsageError(
            f"the {options.runtime} runtime pulls the image by its digest, and this image has none",
            hint="push it to a registry the cluster's nodes reach (reprise build --push "
            "--registry HOST/NAMESPACE), then run again",
        )
    cpus = job.threads * options.procs_per_node
    engine = options.runtime in ENGINE_RUNTIMES
    common = {
        "template": "engine" if engine else options.runtime,
        "version": __version__,
        "run_id": job.run_id,
        "run_dir": run_dir,
        "runtime": options.runtime,
        "nodes": options.nodes,
        "procs": options.procs_per_node,
        "cpus": cpus,
        "gpus_per_node": options.gpus_per_node,
        "partition": options.partition,
        "account": options.account,
        "time": options.time,
        "requeue": options.requeue,
    }
    context = {
        **common,
        "header": render(template_text("slurm/header.sbatch.j2"), common).rstrip("\n"),
        "script": f"{run_dir}/{SCRIPT}",
        "exit_file": f"{run_dir}/{EXIT}",
        "image_id": job.image_id,
        "image_ref": job.image_ref,
        "enroot_ref": enroot_ref(job.image_ref or ""),
        "archive": job.archive,
        "work": job.work,
        "work_target": keys.CONTAINER_WORK,
        "rendezvous": render(
            template_text("slurm/rendezvous.sbatch.j2"), {"nodes": options.nodes}
        ).strip("\n"),
        "node_host": render(
            template_text("slurm/nodehost.sbatch.j2"),
            {"run_dir": run_dir, "runtime": options.runtime, "gpus": bool(options.gpus_per_node)},
        ).rstrip("\n"),
        "owner": job.owner,
        "network": security(options)["network"],
        "gpus": bool(options.gpus_per_node),
        "args": _docker_args(job, options),
        "binds": _binds(job, ","),
        "workdir": job.workdir,
        "env_names": list(job.env_names),
        "site": list(SITE_VARIABLES),
        "launch": launch(job, options, inside=False),
        "launch_inside": launch(job, options, inside=True),
    }
    if engine:
        context.update(
            cli=options.runtime,
            engine_name={"docker": "Docker engine", "podman": "Podman"}[options.runtime],
            # podman names an image by the hex of its id alone
            engine_id=job.image_id if options.runtime == "docker" else job.image_id[7:],
        )
    return render(template_text(f"slurm/{common['template']}.sbatch.j2"), context)


def job_environment(environment: Mapping[str, str], options: SlurmOptions) -> dict[str, str]:
    """The run's variables, plus NCCL's pinned ones on GPU runs."""
    env = dict(environment)
    if options.gpus_per_node:
        env.update({k: v for k, v in NCCL_PINNED.items() if k not in env})
    return env


def env_names(environment: Mapping[str, str]) -> tuple[str, ...]:
    """The names the script passes into the container, in a stable order. Not the runtime
    record's path: each rank's wrapper sets its own, and a launcher (torchrun, itself Python)
    must write none."""
    return tuple(sorted(k for k in environment if k != keys.ENV_RUNTIME_RECORD))


SUBMIT_KEEP = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM", "SHELL", "SLURM_CONF"}
)
SUBMIT_KEEP_PREFIXES = ("LC_", "APPTAINER_", "SINGULARITY_", "ENROOT_", "PYXIS_")


def submit_env(environ: Mapping[str, str], job_env: Mapping[str, str]) -> dict[str, str]:
    """sbatch's environment (it is exported to the job's nodes, and pyxis passes all of it
    into the container): what a shell and the container runtime need from this one, never
    the rest (tokens, keys, an agent's socket), plus the run's own variables. Slurm's job
    variables (reprise may run in an allocation) and the docker client's (each node uses its
    own engine) stay out."""
    keep = {
        k: v for k, v in environ.items() if k in SUBMIT_KEEP or k.startswith(SUBMIT_KEEP_PREFIXES)
    }
    return {**keep, **job_env}
