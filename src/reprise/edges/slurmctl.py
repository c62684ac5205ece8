"""Slurm's client commands (sbatch, scontrol, scancel, sacct, sinfo, srun), run here as
subprocesses: the one place reprise talks to a Slurm cluster. Every failure is an EngineError
(exit 3) that names the command and what Slurm said."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from reprise.core.errors import EngineError, StorageError
from reprise.edges.runstore import atomic_write

TIMEOUT_S = 60.0
# Filesystems every node of a cluster mounts as one: a runs directory on one of these is taken
# as shared; on any other, each node is asked to read back a marker first.
SHARED_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "cephfs",
        "ceph",
        "panfs",
        "wekafs",
        "fuse.glusterfs",
    }
)
CHECK_WAIT_S = 120
JOB_ID = re.compile(r"[0-9]{1,20}")
NOT_A_CLIENT = (
    "run reprise where Slurm's client commands work (a login node of the cluster), or install "
    "them (Debian: slurm-client) with the cluster's slurm.conf (SLURM_CONF)"
)


def _run(
    args: Sequence[str],
    *,
    doing: str,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(args[0])
    if exe is None:
        raise EngineError(
            f"{args[0]} is not on PATH: this machine is no Slurm client", hint=NOT_A_CLIENT
        )
    try:
        done = subprocess.run(
            [exe, *args[1:]],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",  # a job's name or folder may be any bytes
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngineError(
            f"{doing}: {args[0]} did not answer within {timeout:.0f} s",
            hint="is slurmctld up? `scontrol ping` says",
        ) from None
    except OSError as exc:
        raise EngineError(f"{doing}: {args[0]} could not run: {exc.strerror or exc}") from exc
    if check and done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-1]
        raise EngineError(
            f"{doing}: {args[0]} failed (exit {done.returncode}): {said[:500]}",
            hint="`scontrol ping` says whether the controller answers; `sinfo` shows the nodes",
        )
    return done


def job_id(value: str) -> str:
    if not JOB_ID.fullmatch(value):
        raise EngineError(f"{value!r} is not a Slurm job id")
    return value


def submit(script: Path, *, hold: bool, env: Mapping[str, str]) -> str:
    """Submit the batch script (held: it starts once released); its job id."""
    args = ["sbatch", "--parsable", *(["--hold"] if hold else []), str(script)]
    done = _run(args, doing="submitting the job", env=env)
    return job_id(done.stdout.strip().split(";", 1)[0])


def release(job: str) -> None:
    _run(["scontrol", "release", job_id(job)], doing=f"releasing job {job}")


def cancel(job: str) -> None:
    _run(["scancel", job_id(job)], doing=f"cancelling job {job}")


def show_job(job: str) -> str | None:
    """``scontrol show job --oneliner`` of the job; None when the controller no longer knows it."""
    done = _run(
        ["scontrol", "show", "job", "--oneliner", job_id(job)],
        doing=f"asking Slurm about job {job}",
        check=False,
    )
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        said = done.stderr.strip() or done.stdout.strip()
        raise EngineError(f"asking Slurm about job {job}: scontrol failed: {said[:500]}")
    return done.stdout


def sacct_job(job: str) -> str | None:
    """What accounting says of a job the controller forgot (None: no accounting here)."""
    done = _run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-j",
            job_id(job),
            "-o",
            "JobID,State,ExitCode,JobName,WorkDir,Reason",
        ],
        doing=f"asking Slurm's accounting about job {job}",
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def show_nodes(nodes: str | None = None) -> str:
    args = ["scontrol", "show", "node", "--oneliner", *([nodes] if nodes else [])]
    return _run(args, doing="asking Slurm about its nodes").stdout


def partition_nodes(partition: str | None) -> list[str]:
    """The nodes of a partition (the default one when None), as sinfo lists them."""
    args = ["sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else [])]
    out = _run(args, doing="listing the cluster's nodes").stdout
    return list(dict.fromkeys(line.strip() for line in out.splitlines() if line.strip()))


def cluster() -> tuple[str | None, str | None]:
    """(ClusterName, Slurm version) as this client's configuration says."""
    out = _run(["scontrol", "show", "config"], doing="reading Slurm's configuration").stdout
    name = version = None
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ClusterName":
            name = value.strip()
        elif key.strip() == "SLURM_VERSION":
            version = value.strip()
    return name, version


def on_each_node(
    command: Sequence[str],
    *,
    nodes: int,
    partition: str | None,
    account: str | None,
    wait_s: int,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` once on each of ``nodes`` nodes (a short job step of its own), giving
    up when the allocation does not come within ``wait_s`` seconds."""
    args = [
        "srun",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        "--job-name=reprise-check",
        f"--immediate={wait_s}",
        "--time=1",
        "--quiet",
        *([f"--partition={partition}"] if partition else []),
        *([f"--account={account}"] if account else []),
        *command,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if "SLURM_CONF" in os.environ:
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]
    return _run(
        args, doing="checking the cluster's nodes", env=env, timeout=wait_s + 60, check=False
    )


# What a node is, as one line (a node's part of the batch script writes the same, one key=value
# a line, into slurm/node-K.host): tab-separated key=value.
_DESCRIBE = (
    "printf 'node=%s\\thostname=%s\\tcpu=%s\\t%s\\n' \"$SLURM_NODEID\" "
    '"${SLURMD_NODENAME:-$(hostname)}" '
    "\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)\" "
    "\"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sed 's/^/gpu=/' "
    "| tr '\\n' '\\t')\""
)


def describe_nodes(*, nodes: int, partition: str | None, account: str | None) -> list[str]:
    """What ``nodes`` nodes of the partition say they are (a short job step on each): one line
    of tab-separated key=value per node. EngineError when no allocation came."""
    done = on_each_node(
        ["sh", "-c", _DESCRIBE],
        nodes=nodes,
        partition=partition,
        account=account,
        wait_s=CHECK_WAIT_S,
    )
    if done.returncode != 0:
        said = (done.stderr.strip() or "no message").splitlines()[-1]
        raise EngineError(
            f"could not ask the cluster's nodes what they are: srun failed: {said[:300]}",
            hint="`sinfo` shows whether the nodes are up; --strict needs a short allocation",
        )
    return [line for line in done.stdout.splitlines() if line.startswith("node=")][:nodes]


def fs_type(path: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["stat", "-f", "-c", "%T", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip() or None
    return None


def check_shared(
    runs_dir: Path, cluster: str, nodes: int, partition: str | None, account: str | None
) -> None:
    """The runs directory is the same on the cluster's nodes: it is on a cluster filesystem,
    or each of ``nodes`` nodes reads back a marker written here (remembered once they did)."""
    state = runs_dir / ".cache" / "slurm"
    seen = state / f"shared-{cluster}"
    if seen.is_file() or fs_type(runs_dir) in SHARED_FS:
        return
    token = secrets.token_hex(16)
    marker = state / f"marker-{token}"
    atomic_write(marker, token + "\n", durable=False)
    try:
        done = on_each_node(
            ["cat", str(marker.resolve())],
            nodes=nodes,
            partition=partition,
            account=account,
            wait_s=CHECK_WAIT_S,
        )
    finally:
        marker.unlink(missing_ok=True)
    if done.returncode == 0 and done.stdout.split() == [token] * nodes:
        atomic_write(seen, token, durable=False)
        return
    if "No such file" in done.stderr or done.returncode == 0:
        raise StorageError(
            f"the runs directory {runs_dir.resolve()} is not shared with the cluster's nodes: "
            "a marker written here was not there for every node",
            hint="put runs-dir on a filesystem every node mounts at the same path "
            "([tool.reprise] runs-dir, or REPRISE_RUNS_DIR)",
        )
    said = (done.stderr.strip() or "no message").splitlines()[-1]
    raise EngineError(
        f"could not check that the nodes see the runs directory: srun failed: {said[:300]}",
        hint="`sinfo` shows whether the nodes are up; the check needs a short allocation",
    )
