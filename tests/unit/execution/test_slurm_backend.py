"""The Slurm backend's pure parts with no cluster: the merged output of the ranks' logs, the
exit files the batch step writes (read as hostile input), where a rerun goes, and the flags
of `reprise run --slurm`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from reprise.commands.slurm import SlurmRequest, slurm_target_for
from reprise.core.errors import UsageError
from reprise.core.settings import Settings
from reprise.core.slurm import SlurmOptions, parse_node_host
from reprise.execution import Target, rerun_backend
from reprise.execution.slurm import SlurmBackend
from reprise.execution.slurmlogs import batch_exit, merged_output, node_oom


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "slurm").mkdir()
    return run


def test_ranks_logs_merge_line_by_line_with_their_rank(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "slurm" / "job.out").write_text("reprise: job 7 on s[1-2]\n")
    (run / "logs" / "rank-0.log").write_text("step 1\nstep 2\npartial")
    (run / "logs" / "rank-1.log").write_text("step 1\n")
    out = b"".join(merged_output(run, 2, ended=None)).decode()
    lines = out.splitlines()
    assert "[slurm] reprise: job 7 on s[1-2]" in lines
    assert "[rank 0] step 2" in lines and "[rank 1] step 1" in lines
    assert "[rank 0] partial" in lines  # the last line without its newline, at the end
    one = b"".join(merged_output(run, 1, ended=None)).decode()
    assert "step 2\n" in one and "[rank" not in one  # one rank: no prefixes


def test_a_planted_rank_log_is_not_followed(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("do not read\n")
    os.symlink(secret, run / "logs" / "rank-0.log")
    (run / "logs" / "rank-1.log").write_text("ok\n")
    out = b"".join(merged_output(run, 2, ended=None)).decode()
    assert "do not read" not in out and "[rank 1] ok" in out


def test_following_ends_when_the_job_has_ended_and_takes_the_rest(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    calls = {"n": 0}

    def ended() -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            (run / "logs" / "rank-0.log").write_text("last words\n")
        return calls["n"] >= 2

    out = b"".join(merged_output(run, 1, ended=ended, every=0.01, check_every=0.0))
    assert out == b"last words\n"


def test_exit_files_are_read_bounded_and_never_followed(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    assert batch_exit(run, -1) == -1 and not node_oom(run)
    (run / "slurm" / "exit").write_text("137\n")
    (run / "slurm" / "node-1.exit").write_text("137 true\n")
    assert batch_exit(run, -1) == 137 and node_oom(run)
    planted = tmp_path / "planted"
    planted.write_text("0 true\n")
    (run / "slurm" / "exit").unlink()
    (run / "slurm" / "node-1.exit").unlink()
    os.symlink(planted, run / "slurm" / "exit")
    os.symlink(planted, run / "slurm" / "node-0.exit")
    assert batch_exit(run, -1) == -1 and not node_oom(run)
    (run / "slurm" / "exit").unlink()
    (run / "slurm" / "exit").write_text("9" * 10_000)
    assert batch_exit(run, -1) == -1


def _engine() -> Any:
    raise AssertionError("no engine in these tests")


def test_a_slurm_run_reruns_on_its_cluster_with_its_layout_unless_told_otherwise() -> None:
    layout = SlurmOptions(nodes=2, gpus_per_node=4, partition="gpu")
    record = {"executor": {"kind": "slurm", "host": "slurm://c", "slurm": layout.to_record()}}
    chosen = SlurmBackend(_engine, SlurmOptions())
    back = rerun_backend(record, chosen, named=False)
    assert isinstance(back, SlurmBackend) and back.options == layout
    assert rerun_backend(record, chosen, named=True) is chosen
    assert rerun_backend({"executor": {"kind": "local"}}, chosen, named=False) is chosen
    rerun = chosen.for_rerun(record["executor"])
    assert isinstance(rerun, SlurmBackend) and rerun.options.world_size == 8
    hostile = {"slurm": {"nodes": "2; rm -rf /", "runtime": "docker"}}
    assert chosen.for_rerun(hostile) is chosen


def test_run_slurm_flags() -> None:
    settings = cast(Settings, SimpleNamespace(slurm=SlurmOptions(nodes=2, partition="cpu")))
    target = slurm_target_for(Target(), SlurmRequest(nodes=4), settings, gpus=None, named=False)
    off = slurm_target_for(Target(), SlurmRequest(requeue=False), settings, gpus=None, named=False)
    assert off.slurm is not None and off.slurm.requeue is False
    assert target.slurm == SlurmOptions(nodes=4, partition="cpu")
    with pytest.raises(UsageError, match="add --slurm"):
        slurm_target_for(
            Target(), SlurmRequest(nodes=4, explicit=False), settings, gpus=None, named=False
        )
    with pytest.raises(UsageError, match="--gpus-per-node"):
        slurm_target_for(Target(), SlurmRequest(), settings, gpus="all", named=False)
    with pytest.raises(UsageError, match="give one"):
        slurm_target_for(Target("ssh://box"), SlurmRequest(), settings, gpus=None, named=True)
    assert slurm_target_for(Target(), None, settings, gpus=None, named=False) == Target()


SCONTROL = (
    "JobId=42 JobName=reprise-20261130-101112-1a2b3c4d UserId=root(0) JobState={state} "
    "Reason={reason} Requeue=0 Restarts=0 BatchFlag=1 ExitCode={code} NodeList=s[1-2] "
    "WorkDir={work} StdOut={work}/slurm/job.out Power=\n"
)


@pytest.mark.parametrize(
    ("state", "reason", "code", "status", "interrupted", "error"),
    [
        ("COMPLETED", "None", "0:0", 0, False, None),
        ("FAILED", "NonZeroExitCode", "1:0", 1, False, None),
        ("CANCELLED", "None", "0:15", 143, True, "Slurm job 42 cancelled"),
        ("TIMEOUT", "TimeLimit", "0:0", -1, True, "stopped at its time limit"),
        ("NODE_FAIL", "NodeDown", "0:0", -1, False, "NODE_FAIL"),
    ],
)
def test_slurms_job_state_becomes_the_jobs_exit(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    state: str,
    reason: str,
    code: str,
    status: int,
    interrupted: bool,
    error: str | None,
) -> None:
    from reprise.edges import slurmctl

    run = _run_dir(tmp_path)
    text = SCONTROL.format(state=state, reason=reason, code=code, work=run)
    monkeypatch.setattr(slurmctl, "show_job", lambda job: text)
    found = SlurmBackend(_engine).state("42")
    assert found is not None and found.ended and found.exit is not None
    assert found.labels["org.reprise.run-id"] == "20261130-101112-1a2b3c4d"
    assert found.exit.status_code == status
    assert found.exit.interrupted is interrupted
    assert (found.exit.error is None) if error is None else (error in str(found.exit.error))


def test_a_job_slurm_forgot_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    from reprise.edges import slurmctl

    monkeypatch.setattr(slurmctl, "show_job", lambda job: None)
    monkeypatch.setattr(slurmctl, "sacct_job", lambda job: None)
    assert SlurmBackend(_engine).state("42") is None


def test_each_nodes_word_about_itself_joins_rank_0s_runtime_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprise.edges import slurmctl

    run = _run_dir(tmp_path)
    (run / "runtime").mkdir()
    (run / "runtime" / "rank-0.json").write_text('{"seed": "7", "python": "3.11.7"}')
    (run / "slurm" / "node-0.host").write_text(
        "node=0\nhostname=s1\ncpu=AMD EPYC\ncpus=2\nmemory_kib=1000\ndocker=20.10\n"
        "gpu=NVIDIA H100\ngpu=NVIDIA H100\nnonsense\nevil=$(rm -rf /)\n"
    )
    os.symlink(tmp_path / "elsewhere", run / "slurm" / "node-1.host")  # planted: skipped
    monkeypatch.setattr(slurmctl, "show_job", lambda job: None)
    monkeypatch.setattr(slurmctl, "sacct_job", lambda job: None)
    SlurmBackend(_engine, SlurmOptions(nodes=2)).collect("42", run, lambda _: None)
    runtime = json.loads((run / "runtime" / "runtime.json").read_text())
    assert runtime["seed"] == "7"
    assert runtime["nodes"] == [
        {
            "node": 0,
            "hostname": "s1",
            "cpu": "AMD EPYC",
            "cpu_count": 2,
            "memory_kib": 1000,
            "docker_version": "20.10",
            "gpus": [{"name": "NVIDIA H100"}] * 2,
        }
    ]
    assert parse_node_host("gpu=x\n" * 500)["gpus"] == [{"name": "x"}] * 64


def test_a_requeued_jobs_restarts_are_recorded_and_their_logs_kept_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprise.edges import slurmctl

    run = _run_dir(tmp_path)
    (run / "runtime").mkdir()
    (run / "runtime" / "rank-0.json").write_text('{"seed": "7"}')
    (run / "slurm" / "job.out").write_text(
        "slurmstepd-s1: error: *** JOB 42 ON s1 CANCELLED AT 2026-11-30T11:23:29 DUE TO JOB "
        "REQUEUE ***\nreprise: job 42 restarted (restart 1)\n"
    )
    (run / "logs" / "rank-0.log").write_text("step 1\n")
    (run / "logs" / "rank-0.restart-1.log").write_text("step 1 again\n")
    (run / "logs" / "rank-1.restart-1.log").write_text("step 1 again\n")
    (run / "logs" / "rank-1.restart-0.log").write_text("not a restart\n")
    out = b"".join(merged_output(run, 2, ended=None)).decode().splitlines()
    assert "[rank 0] step 1" in out and "[rank 0, restart 1] step 1 again" in out
    assert (
        "[rank 1, restart 1] step 1 again" in out
        and "[slurm] reprise: job 42 restarted (restart 1)" in out
    )
    assert not any("not a restart" in line for line in out)
    text = SCONTROL.format(state="COMPLETED", reason="None", code="0:0", work=run)
    monkeypatch.setattr(slurmctl, "show_job", lambda job: text.replace("Restarts=0", "Restarts=1"))
    SlurmBackend(_engine, SlurmOptions(nodes=2)).collect("42", run, lambda _: None)
    runtime = json.loads((run / "runtime" / "runtime.json").read_text())
    assert runtime["requeues"] == [{"restart": 1, "reason": "JOB REQUEUE"}]


def test_a_runtime_record_the_job_wrote_is_never_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No rank writes runtime.json under Slurm: one there is the job's, saying any nodes and
    restarts it likes. Rank 0's record replaces it (a link is replaced, not followed); without
    rank 0's record it is removed, so that finishing says the record is missing."""
    from reprise.edges import slurmctl

    monkeypatch.setattr(slurmctl, "show_job", lambda job: None)
    monkeypatch.setattr(slurmctl, "sacct_job", lambda job: None)
    host = tmp_path / "host.json"
    host.write_text('{"host": "file"}')
    run = _run_dir(tmp_path)
    (run / "runtime").mkdir()
    (run / "runtime" / "rank-0.json").write_text('{"seed": "7"}')
    (run / "runtime" / "runtime.json").symlink_to(host)
    SlurmBackend(_engine, SlurmOptions(nodes=1)).collect("42", run, lambda _: None)
    runtime = json.loads((run / "runtime" / "runtime.json").read_text())
    assert runtime["seed"] == "7" and "nodes" in runtime
    assert not (run / "runtime" / "runtime.json").is_symlink()
    assert host.read_text() == '{"host": "file"}'

    (run / "runtime" / "rank-0.json").unlink()
    (run / "runtime" / "runtime.json").write_text('{"nodes": ["made up"], "requeues": []}')
    SlurmBackend(_engine, SlurmOptions(nodes=1)).collect("42", run, lambda _: None)
    assert not (run / "runtime" / "runtime.json").exists()
    assert sorted(p.name for p in (run / "runtime").iterdir()) == []


@pytest.mark.parametrize("planted", ["link", "fifo", "hard link"])
def test_a_planted_rank_0_record_does_not_keep_the_jobs_runtime_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    from reprise.edges import slurmctl

    monkeypatch.setattr(slurmctl, "show_job", lambda job: None)
    monkeypatch.setattr(slurmctl, "sacct_job", lambda job: None)
    run = _run_dir(tmp_path)
    (run / "runtime").mkdir()
    rank0 = run / "runtime" / "rank-0.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"seed": "1"}')
    if planted == "link":
        rank0.symlink_to(elsewhere)
    elif planted == "fifo":
        os.mkfifo(rank0)
    else:
        os.link(elsewhere, rank0)
    (run / "runtime" / "runtime.json").write_text('{"nodes": ["made up"]}')
    SlurmBackend(_engine, SlurmOptions(nodes=1)).collect("42", run, lambda _: None)
    assert not (run / "runtime" / "runtime.json").exists()
