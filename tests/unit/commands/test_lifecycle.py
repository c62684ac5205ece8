"""Every path of a run's lifecycle through the execution seam, with the in-memory backend:
success, failure, OOM, a vanished job, an engine that drops and comes back, Ctrl-C, and a job
that plants links and FIFOs where reprise reads and writes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from reprise.commands.build import RunImage
from reprise.commands.inputs import prepare_run
from reprise.commands.run import execute
from reprise.edges.project import load_project
from reprise.edges.runstore import read_record
from reprise.execution.backend import JobExit

from ...fakes import FakeBackend, plants, writes
from ...projects import init_repo, tiny_project

IMAGE = RunImage(
    id="sha256:" + "1" * 64,
    record={
        "tag": "reprise/tiny:0123456789abcdef0123",
        "id": "sha256:" + "1" * 64,
        "source": "local",
    },
    dockerfile=b"FROM scratch\n",
    lock=b"",
    env={},
)


def _run(
    tmp_path: Path, backend: FakeBackend, overrides: tuple[str, ...] = ()
) -> tuple[Path, dict[str, object]]:
    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    inputs = prepare_run(
        load_project(root),
        overrides=overrides,
        seed=None,
        command=None,
        allow_dirty=False,
        gpus=None,
        threads=1,
    )

    class Sink:
        data = b""

        def write(self, b: bytes) -> int:
            self.data += b
            return len(b)

        def flush(self) -> None:
            return None

    run_dir = execute(backend, inputs, IMAGE, say=lambda _: None, console=Sink())  # type: ignore[arg-type]
    return run_dir, read_record(run_dir)


def test_success_records_output_manifest_host_and_isolation(tmp_path: Path) -> None:
    backend = FakeBackend(output=["step 1", "step 2"], behaviour=writes({"outputs/a.txt": b"A"}))
    run_dir, record = _run(tmp_path, backend)
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert (run_dir / "logs/run.log").read_text() == "step 1\nstep 2\n"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["outputs/a.txt"]
    assert record["host"] == backend.describe_host()
    assert record["container"]["security"] == backend.security  # type: ignore[index]
    job = next(iter(backend.jobs_made.values()))
    assert job.removed and job.spec.writable == ("outputs", "checkpoints", "logs", "runtime")
    assert "warnings" not in record


def test_failure_names_its_reason_in_failed(tmp_path: Path) -> None:
    run_dir, record = _run(tmp_path, FakeBackend(output=["about to fail"], exit=JobExit(3)))
    assert record["status"] == "failed" and record["exit_code"] == 3
    failed = (run_dir / "FAILED").read_text()
    assert "reason: the job exited with code 3" in failed and "about to fail" in failed


def test_oom_kill(tmp_path: Path) -> None:
    _, record = _run(tmp_path, FakeBackend(exit=JobExit(137, oom_killed=True)))
    assert record["status"] == "failed" and "out of memory" in str(record["reason"])


def test_a_job_that_vanishes_is_lost(tmp_path: Path) -> None:
    _, record = _run(tmp_path, FakeBackend(vanish_on_wait=True))
    assert record["status"] == "lost" and "no longer exists" in str(record["reason"])


def test_an_engine_that_drops_and_finds_the_job_ended_fails_the_run_with_why(
    tmp_path: Path,
) -> None:
    _, record = _run(tmp_path, FakeBackend(engine_errors_on_wait=1))
    assert record["status"] == "failed"
    assert "engine stopped the container" in str(record["reason"])


def test_ctrl_c_while_starting_stops_the_job_and_records_interrupted(tmp_path: Path) -> None:
    backend = FakeBackend(behaviour=lambda _: os.kill(os.getpid(), signal.SIGINT))
    root = tmp_path
    with pytest.raises(KeyboardInterrupt):
        _run(root, backend)
    runs = [p for p in (root / "tiny" / "runs" / "tiny").iterdir() if not p.name.startswith(".")]
    record = read_record(runs[0])
    assert record["status"] == "interrupted"
    assert backend.stopped == [record["container"]["id"]]


def test_links_planted_by_the_job_are_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "host-secret.json"
    victim.write_text('{"secret": "root only"}')
    victim.chmod(0o600)
    before = victim.read_bytes()
    backend = FakeBackend(
        output=["* * * * * root evil"],
        behaviour=plants(
            {
                "logs/run.log": str(victim),
                "runtime/runtime.json": str(victim),
                "outputs/link": str(victim),
            }
        ),
    )
    run_dir, record = _run(tmp_path, backend)
    assert victim.read_bytes() == before and oct(victim.stat().st_mode & 0o777) == "0o600"
    assert (run_dir / "logs/run.log").read_text() == "* * * * * root evil\n"
    assert not (run_dir / "logs/run.log").is_symlink()
    assert record["runtime"] is None
    warnings = "\n".join(record["warnings"])  # type: ignore[arg-type]
    assert "logs/run.log was a symlink" in warnings
    assert "runtime/runtime.json is a symlink" in warnings
    assert "outputs/link (symlink)" in warnings
    manifest = json.loads((run_dir / "manifest.json").read_text())
    link = next(f for f in manifest["files"] if f["path"] == "outputs/link")
    assert link["kind"] == "symlink" and link["target"] == str(victim)
    assert "root only" not in (run_dir / "model_card.md").read_text()


def test_a_fifo_where_metrics_are_read_does_not_hang(tmp_path: Path) -> None:
    def fifo(run_dir: Path) -> None:
        os.mkfifo(run_dir / "logs" / "metrics.jsonl")

    run_dir, record = _run(tmp_path, FakeBackend(behaviour=fifo))
    assert record["status"] == "succeeded"
    assert "No metrics were logged" in (run_dir / "model_card.md").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"hash": None, "kind": "fifo", "path": "logs/metrics.jsonl", "size": 0} in manifest[
        "files"
    ]


def test_overrides_to_a_job_that_never_reads_its_config_are_called_out(tmp_path: Path) -> None:
    _, record = _run(tmp_path / "a", FakeBackend(), overrides=("lr=0.5",))
    config = record["config"]
    assert isinstance(config, dict) and config["read"] is False
    assert any("they did not reach it (lr=0.5)" in w for w in record["warnings"])  # type: ignore[attr-defined]
    reads = writes({"runtime/config-read": b""})  # what the runtime's audit hook leaves
    _, record = _run(tmp_path / "b", FakeBackend(behaviour=reads), overrides=("lr=0.5",))
    assert record["config"]["read"] is True and "warnings" not in record  # type: ignore[index]


def test_a_command_missing_from_the_image_is_the_jobs_failure_with_a_hint(tmp_path: Path) -> None:
    missing = 'OCI runtime create failed: exec: "train-pkg": executable file not found in $PATH'
    run_dir, record = _run(tmp_path, FakeBackend(start_error=missing))
    assert record["status"] == "failed" and record["exit_code"] == 127
    assert "executable file not found" in str(record["reason"])
    assert record["hint"] and "[project.scripts]" in str(record["hint"])
    assert "hint: " in (run_dir / "FAILED").read_text()


def test_ctrl_c_while_attached_detaches_and_leaves_the_run_going(tmp_path: Path) -> None:
    from reprise.commands.lifecycle import follow
    from reprise.core.errors import Detached

    class Interrupted(FakeBackend):
        def wait(self, job: str) -> JobExit:
            raise KeyboardInterrupt

    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    inputs = prepare_run(
        load_project(root), overrides=(), seed=None, command=None, allow_dirty=False,
        gpus=None, threads=1,
    )  # fmt: skip
    backend = Interrupted()
    run_dir = execute(backend, inputs, IMAGE, say=lambda _: None, detach=True)
    said: list[str] = []
    with pytest.raises(Detached):
        follow(backend, run_dir, say=said.append, echo=False, on_interrupt="detach")
    assert read_record(run_dir)["status"] == "running" and backend.stopped == []
    assert said == [f"detached; the run goes on: reprise attach {run_dir.name}"]


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_failed_never_has_an_empty_reason_line(tmp_path: Path, reason: str | None) -> None:
    from reprise.commands.finish import finalize

    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    inputs = prepare_run(
        load_project(root), overrides=(), seed=None, command=None, allow_dirty=False,
        gpus=None, threads=1,
    )  # fmt: skip
    run_dir = execute(FakeBackend(), inputs, IMAGE, say=lambda _: None, detach=True)
    record = finalize(None, run_dir, status="lost", exit_code=None, reason=reason)
    (line,) = [x for x in (run_dir / "FAILED").read_text().splitlines() if x.startswith("reason:")]
    assert line == "reason: no reason was given" and record["reason"] == "no reason was given"
