"""Runs on a Slurm cluster, as values: the job's layout and site options (``--nodes``,
``--gpus-per-node``, ``--partition``, ``--time``, ``--account``, the container runtime), read
from ``[tool.reprise.slurm]``, flags or a run's record; and what ``scontrol``/``sacct`` say of a
job, parsed. Pure."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reprise.core.errors import SettingsError, UsageError

RUNTIMES = ("docker", "podman", "apptainer", "pyxis")
# Runtimes with an engine's command line on each node: the image loaded there from an archive
# reprise writes beside the runs, the job as the container's user, isolated as a local run.
ENGINE_RUNTIMES = ("docker", "podman")
MAX_NODES = 4096
MAX_GPUS_PER_NODE = 64
MAX_RESTARTS = 1000  # more requeues than this are counted as this many
# Slurm's own grammar for partitions and accounts (a comma-separated list of partitions).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_PARTITION = re.compile(rf"{_NAME.pattern}(?:,{_NAME.pattern}){{0,15}}")
# minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or no limit.
_TIME = re.compile(
    r"[0-9]{1,7}(?::[0-9]{1,2}){0,2}|[0-9]{1,4}-[0-9]{1,2}(?::[0-9]{1,2}){0,2}|UNLIMITED|INFINITE"
)
SETTING_KEYS = ("nodes", "gpus-per-node", "partition", "time", "account", "runtime", "requeue")


@dataclass(frozen=True)
class SlurmOptions:
    """How a run is laid out on the cluster and where it is queued. One container per node;
    ``gpus_per_node`` ranks per node (one on CPU nodes), so the world size is their product."""

    nodes: int = 1
    gpus_per_node: int | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    runtime: str = "docker"
    requeue: bool = True  # a requeued job (preempted, a node lost) is followed through its restart

    @property
    def procs_per_node(self) -> int:
        return self.gpus_per_node or 1

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    def to_record(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "procs_per_node": self.procs_per_node,
            "world_size": self.world_size,
            "partition": self.partition,
            "time": self.time,
            "account": self.account,
            "requeue": self.requeue,
        }

    def with_flags(self, **flags: Any) -> SlurmOptions:
        """These options with each flag that was given (not None) in place; checked."""
        given = {k: v for k, v in flags.items() if v is not None}
        if given.get("gpus_per_node") == 0:
            given["gpus_per_node"] = None
        for key, value in given.items():
            problem = check(key.replace("_", "-"), value)
            if problem:
                raise UsageError(f"--{key.replace('_', '-')} {value!r} {problem}")
        return dataclasses.replace(self, **given)


def check(key: str, value: object) -> str | None:
    """What is wrong with ``value`` for the setting ``key`` (None: nothing)."""
    if key == "nodes":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_NODES
        return None if ok else f"must be a whole number of nodes from 1 to {MAX_NODES}"
    if key == "gpus-per-node":
        ok = value is None or (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value <= MAX_GPUS_PER_NODE
        )
        return None if ok else f"must be a whole number from 0 to {MAX_GPUS_PER_NODE}"
    if key == "partition":
        ok = isinstance(value, str) and _PARTITION.fullmatch(value) is not None
        return None if ok else "must be a Slurm partition name (or a comma-separated list)"
    if key == "account":
        ok = isinstance(value, str) and _NAME.fullmatch(value) is not None
        return None if ok else "must be a Slurm account name"
    if key == "time":
        ok = isinstance(value, str) and _TIME.fullmatch(value) is not None
        return None if ok else "must be a Slurm time: minutes, HH:MM:SS or D-HH:MM:SS"
    if key == "runtime":
        return None if value in RUNTIMES else f"must be one of {', '.join(RUNTIMES)}"
    if key == "requeue":
        return None if isinstance(value, bool) else "must be true or false"
    return f"is not a setting of [tool.reprise.slurm] (known: {', '.join(SETTING_KEYS)})"


def options_from_table(table: object) -> SlurmOptions:
    """``[tool.reprise.slurm]`` as options; SettingsError naming a bad key."""
    if not isinstance(table, Mapping):
        raise SettingsError(
            "[tool.reprise.slurm] must be a table", key="slurm", hint="e.g. nodes = 2"
        )
    for key in table:
        problem = check(str(key), table[key])
        if problem:
            raise SettingsError(
                f"[tool.reprise.slurm] {key} {problem}", key=f"slurm.{key}", value=table[key]
            )
    return SlurmOptions(
        nodes=table.get("nodes", 1),
        gpus_per_node=table.get("gpus-per-node") or None,
        partition=table.get("partition"),
        time=table.get("time"),
        account=table.get("account"),
        runtime=table.get("runtime", "docker"),
        requeue=table.get("requeue", True),
    )


def options_from_record(value: object) -> SlurmOptions | None:
    """The layout a run recorded (its ``executor.slurm``), each value checked; None if absent
    or not reprise's."""
    if not isinstance(value, Mapping):
        return None
    fields = {
        "nodes": value.get("nodes"),
        "gpus-per-node": value.get("gpus_per_node"),
        "runtime": value.get("runtime"),
    }
    fields.update({k: value[k] for k in ("partition", "time", "account") if value.get(k)})
    fields["requeue"] = value.get("requeue", False)  # runs before the setting: never requeued
    if any(check(k, v) for k, v in fields.items()):
        return None
    return SlurmOptions(
        nodes=int(value["nodes"]),
        gpus_per_node=value.get("gpus_per_node") or None,
        partition=value.get("partition") or None,
        time=value.get("time") or None,
        account=value.get("account") or None,
        runtime=str(value["runtime"]),
        requeue=bool(value.get("requeue", False)),
    )


# --- what Slurm says of a job --------------------------------------------------------------
# Job states: still to run or running (COMPLETING: its processes are being cleaned up).
PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
ACTIVE = frozenset(
    {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
)
# Ended by someone or something other than the job: the run is `interrupted`.
INTERRUPTED = {
    "CANCELLED": "cancelled",
    "TIMEOUT": "stopped at its time limit",
    "PREEMPTED": "preempted",
    "DEADLINE": "stopped at its deadline",
}
_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 15: "SIGTERM"}


@dataclass(frozen=True)
class SlurmJob:
    """One job as ``scontrol show job -o`` (or ``sacct``) reports it."""

    job_id: str
    state: str  # the job state's first word, e.g. RUNNING, CANCELLED
    exit_code: int | None
    signal: int | None
    reason: str | None
    name: str | None
    work_dir: str | None
    held: bool = False
    nodes: str | None = None
    detail: str = ""  # the whole state text, e.g. "CANCELLED by 0"
    restarts: int = 0  # how many times Slurm requeued the job (its attempts less one)

    @property
    def phase(self) -> str:
        """created (held, never started), running (queued or running), or ended."""
        if self.state in PENDING:
            return "created" if self.held else "running"
        if self.state in ACTIVE:
            return "running"
        return "ended"

    @property
    def status_code(self) -> int:
        """As a shell reports it: the exit code, or 128 + the signal that ended the job."""
        if self.signal:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else -1

    def describe(self) -> str:
        """Slurm's reason in words, for the record."""
        what = INTERRUPTED.get(self.state)
        text = f"Slurm job {self.job_id} {what or 'ended ' + self.state}"
        if self.detail and self.detail != self.state:
            text += f" ({self.detail})"
        if self.signal:
            text += f", killed by signal {self.signal} ({_SIGNALS.get(self.signal, 'SIG?')})"
        elif self.exit_code:
            text += f", exit code {self.exit_code}"
        if self.reason and self.reason not in ("None", "(null)"):
            text += f"; reason: {self.reason}"
        return text


def _exit(text: str | None) -> tuple[int | None, int | None]:
    code, _, signal = (text or "").partition(":")
    try:
        return int(code), int(signal or 0)
    except ValueError:
        return None, None


def parse_scontrol_job(text: str) -> SlurmJob | None:
    """The first job of ``scontrol show job --oneliner ID`` output (key=value words; the
    values of a few keys, such as Command, may hold spaces and come last)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("JobId=")), None)
    if line is None:
        return None
    fields = _fields(line)
    state = fields.get("JobState", "")
    code, signal = _exit(fields.get("ExitCode"))
    reason = fields.get("Reason")
    return SlurmJob(
        job_id=fields.get("JobId", ""),
        state=(state.split() or ["UNKNOWN"])[0],
        exit_code=code,
        signal=signal,
        reason=reason,
        name=fields.get("JobName"),
        work_dir=fields.get("WorkDir"),
        held=state == "PENDING" and reason in ("JobHeldUser", "JobHeldAdmin"),
        nodes=fields.get("NodeList"),
        detail=state,
        restarts=min(max(_int(fields.get("Restarts")) or 0, 0), MAX_RESTARTS),
    )


_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_:/]*")


def _fields(line: str) -> dict[str, str]:
    """KEY=value words of one line; a word without '=' continues the value before it."""
    fields: dict[str, str] = {}
    key = None
    for word in line.split(" "):
        name, eq, value = word.partition("=")
        if eq and _KEY.fullmatch(name):
            key = name
            fields[key] = value
        elif key is not None and word:
            fields[key] += " " + word
    return fields


# slurmstepd's line in the batch output when it ends a job's attempt ("... DUE TO JOB REQUEUE"),
# and the batch script's own when an attempt starts again.
_ENDED_DUE = re.compile(
    r"\*\*\* (?:JOB|STEP) [0-9.]+ ON \S+ CANCELLED AT \S+ DUE TO ([A-Z][A-Z ]{0,39}) \*\*\*"
)
_RESTARTED = re.compile(r"^reprise: job [0-9]+ restarted \(restart ([0-9]{1,4})\)$")
MAX_LISTED_RESTARTS = 100


def requeues(output: str, restarts: int) -> list[dict[str, Any]]:
    """Each of a job's ``restarts`` (as ``scontrol`` counts them) with Slurm's reason, read from
    the batch output (slurmstepd's "DUE TO ..." line of the attempt it ended); the output is the
    job's word, so a reason missing or unreadable there is said to be unknown."""
    reasons: dict[int, str] = {}
    attempt = 0
    for line in output.splitlines():
        started = _RESTARTED.match(line)
        if started:
            attempt = int(started.group(1))
            continue
        ended = _ENDED_DUE.search(line)
        if ended and attempt + 1 not in reasons:
            reasons[attempt + 1] = ended.group(1).strip()
    return [
        {"restart": n, "reason": reasons.get(n, "requeued by Slurm (no reason in its output)")}
        for n in range(1, min(restarts, MAX_LISTED_RESTARTS) + 1)
    ]


def parse_sacct_job(text: str, job_id: str) -> SlurmJob | None:
    """``sacct -X -n -P -j ID -o JobID,State,ExitCode,JobName,WorkDir,Reason`` output."""
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 6 or parts[0] != job_id:
            continue
        code, signal = _exit(parts[2])
        state = parts[1].strip()
        return SlurmJob(
            job_id=job_id,
            state=(state.split() or ["UNKNOWN"])[0],
            exit_code=code,
            signal=signal,
            reason=parts[5] or None,
            name=parts[3] or None,
            work_dir=parts[4] or None,
            detail=state,
        )
    return None


def parse_nodes(text: str) -> list[dict[str, Any]]:
    """``scontrol show node --oneliner`` as one dict per node (the keys a record needs)."""
    nodes = []
    for line in text.splitlines():
        if not line.startswith("NodeName="):
            continue
        fields = _fields(line)
        gres = [g for g in fields.get("Gres", "").split(",") if g.startswith("gpu")]
        gpus = [gpu for g in gres for gpu in _gpus(g)]
        nodes.append(
            {
                "name": fields.get("NodeName"),
                "arch": fields.get("Arch"),
                "cpus": _int(fields.get("CPUTot")),
                "memory_mib": _int(fields.get("RealMemory")),
                "gres": gres,
                "gpus": gpus,
                "state": fields.get("State"),
                "partitions": fields.get("Partitions"),
            }
        )
    return nodes


def _gpus(gres: str) -> list[dict[str, Any]]:
    """``gpu:a100:4(S:0-1)`` (or ``gpu:4``) as four GPUs named a100."""
    parts = gres.split("(", 1)[0].split(":")
    count = int(parts[-1]) if parts[-1].isdigit() else 1
    name = parts[1] if len(parts) >= 3 else "gpu"
    return [{"name": name} for _ in range(min(count, 64))]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_HOST_KEYS = {"node": "node", "hostname": "hostname", "cpu": "cpu", "cpus": "cpu_count"}
_HOST_KEYS.update({"memory_kib": "memory_kib", "docker": "docker_version"})
_HOST_KEYS["podman"] = "podman_version"
MAX_NODE_GPUS = 64


def parse_node_host(text: str) -> dict[str, Any]:
    """A node's description as its part of the batch script wrote it (``key=value`` lines; the
    node's word, bounded): hostname, CPU model and count, memory, Docker or Podman version,
    GPUs."""
    host: dict[str, Any] = {"gpus": []}
    for line in text.splitlines()[: 16 + MAX_NODE_GPUS]:
        key, sep, value = line.partition("=")
        value = value.strip()[:256]
        if not sep or not value:
            continue
        if key == "gpu" and len(host["gpus"]) < MAX_NODE_GPUS:
            host["gpus"].append({"name": value})
        elif key in _HOST_KEYS:
            numeric = key in ("node", "cpus", "memory_kib")
            host[_HOST_KEYS[key]] = _int(value) if numeric else value
    return host
