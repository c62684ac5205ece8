"""Slurm options from settings, flags and records; what scontrol and sacct say of a job."""

from __future__ import annotations

import pytest

from reprise.core.errors import SettingsError, UsageError
from reprise.core.slurm import (
    SlurmOptions,
    options_from_record,
    options_from_table,
    parse_nodes,
    parse_sacct_job,
    parse_scontrol_job,
)

SCONTROL = (
    "JobId=42 JobName=reprise-20261130-101112-1a2b3c4d UserId=root(0) GroupId=root(0) "
    "Priority=1 Nice=0 Account=(null) QOS=(null) JobState={state} Reason={reason} "
    "Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode={code} "
    "NodeList=s[1-2] WorkDir=/runs/spiral/20261130-101112-1a2b3c4d "
    "StdOut=/runs/spiral/20261130-101112-1a2b3c4d/slurm/job.out Power=\n"
)


def _job(state: str, reason: str = "None", code: str = "0:0") -> str:
    return SCONTROL.format(state=state, reason=reason, code=code)


def test_settings_table_and_flags() -> None:
    options = options_from_table({"nodes": 2, "partition": "cpu", "time": "1:00:00"})
    assert options.nodes == 2 and options.world_size == 2 and options.runtime == "docker"
    flagged = options.with_flags(nodes=4, gpus_per_node=8, account=None)
    assert flagged.world_size == 32 and flagged.partition == "cpu"
    assert options.with_flags(gpus_per_node=0).gpus_per_node is None
    with pytest.raises(UsageError, match="--time"):
        options.with_flags(time="soon")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"nodes": 0}, "slurm.nodes"),
        ({"nodes": True}, "slurm.nodes"),
        ({"runtime": "singularity"}, "slurm.runtime"),
        ({"partition": "a b"}, "slurm.partition"),
        ({"account": "--all"}, "slurm.account"),
        ({"gpus": 2}, "slurm.gpus"),
        ([], "slurm"),
    ],
)
def test_bad_settings_name_their_key(table: object, key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        options_from_table(table)
    assert caught.value.key == key


def test_record_round_trip_and_hostile_records() -> None:
    options = SlurmOptions(nodes=2, gpus_per_node=4, partition="gpu", time="2-00:00:00")
    assert options_from_record(options.to_record()) == options
    assert options_from_record({"nodes": "2; rm -rf /", "runtime": "docker"}) is None
    assert options_from_record({**options.to_record(), "partition": "-p x"}) is None
    assert options_from_record(None) is None


def test_scontrol_states() -> None:
    held = parse_scontrol_job(_job("PENDING", "JobHeldUser"))
    assert held is not None and held.phase == "created" and held.job_id == "42"
    assert held.name == "reprise-20261130-101112-1a2b3c4d"
    assert held.work_dir == "/runs/spiral/20261130-101112-1a2b3c4d"
    queued = parse_scontrol_job(_job("PENDING", "Resources"))
    assert queued is not None and queued.phase == "running"
    done = parse_scontrol_job(_job("COMPLETED"))
    assert done is not None and done.phase == "ended" and done.status_code == 0
    failed = parse_scontrol_job(_job("FAILED", "NonZeroExitCode", "3:0"))
    assert failed is not None and failed.status_code == 3
    assert "exit code 3" in failed.describe()
    cancelled = parse_scontrol_job(_job("CANCELLED", "None", "0:15"))
    assert cancelled is not None and cancelled.status_code == 143
    assert cancelled.describe().startswith("Slurm job 42 cancelled")
    assert parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n") is None


def test_sacct_and_nodes() -> None:
    job = parse_sacct_job("42|CANCELLED by 0|0:15|reprise-x|/runs/x|None\n", "42")
    assert job is not None and job.state == "CANCELLED" and "by 0" in job.describe()
    assert parse_sacct_job("41|COMPLETED|0:0|x|/y|None\n", "42") is None
    nodes = parse_nodes(
        "NodeName=s1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=2 Gres=gpu:a100:4 "
        "NodeAddr=10.77.100.2 OS=Linux 6.1.0 #1 SMP RealMemory=1000 State=IDLE Partitions=reprise\n"
    )
    assert nodes == [
        {
            "name": "s1",
            "arch": "x86_64",
            "cpus": 2,
            "memory_mib": 1000,
            "gres": ["gpu:a100:4"],
            "gpus": [{"name": "a100"}] * 4,
            "state": "IDLE",
            "partitions": "reprise",
        }
    ]


def test_requeue_setting_restarts_and_their_reasons() -> None:
    from reprise.core.slurm import requeues

    assert SlurmOptions().requeue and not options_from_table({"requeue": False}).requeue
    with pytest.raises(SettingsError):
        options_from_table({"requeue": "yes"})
    recorded = SlurmOptions(nodes=2).to_record()
    assert options_from_record(recorded) == SlurmOptions(nodes=2)
    del recorded["requeue"]  # recorded before the setting: its job was never requeued
    old = options_from_record(recorded)
    assert old is not None and not old.requeue
    requeued = parse_scontrol_job(_job("PENDING", "BeginTime").replace("Restarts=0", "Restarts=2"))
    assert requeued is not None and requeued.phase == "running" and requeued.restarts == 2
    planted = parse_scontrol_job(_job("RUNNING").replace("Restarts=0", "Restarts=-3"))
    assert planted is not None and planted.restarts == 0
    output = (
        "reprise: job 42 on s[1-2], rendezvous 10.77.100.2:20042\n"
        "slurmstepd-s1: error: *** JOB 42 ON s1 CANCELLED AT 2026-11-30T11:23:29 DUE TO "
        "PREEMPTION ***\n"
        "slurmstepd-s2: error: *** STEP 42.0 ON s2 CANCELLED AT 2026-11-30T11:23:29 DUE TO "
        "PREEMPTION ***\n"
        "reprise: job 42 restarted (restart 1)\n"
        "slurmstepd-s1: error: *** JOB 42 ON s1 CANCELLED AT 2026-11-30T11:25:01 DUE TO JOB "
        "REQUEUE ***\n"
        "reprise: job 42 restarted (restart 2)\n"
    )
    assert requeues(output, 2) == [
        {"restart": 1, "reason": "PREEMPTION"},
        {"restart": 2, "reason": "JOB REQUEUE"},
    ]
    assert requeues("", 1) == [
        {"restart": 1, "reason": "requeued by Slurm (no reason in its output)"}
    ]
    assert len(requeues(output, 10**6)) == 100  # listed up to a bound
