"""Names, tags, notes, stop, logs and rm through the execution seam, with the in-memory
backend: records changed under the lock, `interrupted` whoever finishes a stopped run,
secrets masked in a running run's output, running runs never removed."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from reprise.commands.build import RunImage
from reprise.commands.inputs import prepare_run
from reprise.commands.lifecycle import STOPPED, follow, reconcile, request_stop
from reprise.commands.manage import (
    check_name_free,
    check_removable,
    note_run,
    remove_run,
    set_name,
    stop_run,
    stream_logs,
    tag_run,
)
from reprise.commands.run import execute
from reprise.core.envvars import resolve_env
from reprise.core.errors import InvalidNameError, RecordError, UsageError
from reprise.edges.project import load_project
from reprise.edges.runstore import read_record
from reprise.execution.backend import JobExit

from ...fakes import FakeBackend
from ...projects import init_repo, tiny_project

IMAGE = RunImage(
    id="sha256:" + "1" * 64,
    record={"tag": "reprise/tiny:0123456789abcdef0123", "id": "sha256:" + "1" * 64},
    dockerfile=b"FROM scratch\n",
    lock=b"",
    env={},
)


def _start(tmp_path: Path, backend: FakeBackend, *, running: bool = True, **prepare: Any) -> Path:
    """A run started detached; its job still running (unless ``running`` is False)."""
    root = tmp_path / "tiny"
    if not root.exists():
        tiny_project(root)
        init_repo(root)
    inputs = prepare_run(
        load_project(root),
        overrides=(),
        seed=None,
        command=None,
        allow_dirty=False,
        gpus=None,
        threads=1,
        **prepare,
    )
    run_dir = execute(backend, inputs, IMAGE, say=lambda _: None, detach=True)
    if running:
        backend.jobs_made[_job(run_dir)].phase = "running"
    return run_dir


def _job(run_dir: Path) -> str:
    return str(read_record(run_dir)["container"]["id"])


def _finished(tmp_path: Path) -> Path:
    backend = FakeBackend(output=["epoch 1", "epoch 2"])
    run_dir = _start(tmp_path, backend, running=False)
    assert reconcile(backend, run_dir)["status"] == "succeeded"
    return run_dir


# --- names, tags, notes --------------------------------------------------------------------
def test_a_name_given_to_prepare_run_is_in_the_first_record(tmp_path: Path) -> None:
    run_dir = _start(tmp_path, FakeBackend(), name="baseline")
    assert read_record(run_dir)["name"] == "baseline"
    with pytest.raises(UsageError, match="'baseline' is taken by run"):
        check_name_free(run_dir.parent.parent, "baseline")
    assert check_name_free(run_dir.parent.parent, "other") == "other"
    with pytest.raises(InvalidNameError):
        _start(tmp_path, FakeBackend(), name="latest")


def test_set_name_on_a_running_run_keeps_what_the_run_recorded(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_dir = _start(tmp_path, backend)
    before = read_record(run_dir)
    after = set_name(run_dir, "wide")
    assert after == {**before, "name": "wide"} == read_record(run_dir)


def test_tags_are_added_once_in_order_and_removed(tmp_path: Path) -> None:
    run_dir = _finished(tmp_path)
    assert tag_run(run_dir, ["b", "a", "b"])["tags"] == ["b", "a"]
    assert tag_run(run_dir, ["c", "a"])["tags"] == ["b", "a", "c"]
    assert tag_run(run_dir, [], ["a", "zzz"])["tags"] == ["b", "c"]
    assert read_record(run_dir)["tags"] == ["b", "c"]
    with pytest.raises(InvalidNameError):
        tag_run(run_dir, ["ok", "not ok"])
    assert read_record(run_dir)["tags"] == ["b", "c"]  # nothing half-done


def test_notes_are_appended_with_their_time(tmp_path: Path) -> None:
    run_dir = _finished(tmp_path)
    note_run(run_dir, "  first\n")
    record = note_run(run_dir, "second: lr too high")
    assert [n["text"] for n in record["notes"]] == ["first", "second: lr too high"]
    assert all(n["at"].endswith("Z") for n in record["notes"])
    with pytest.raises(UsageError, match="empty"):
        note_run(run_dir, "   ")
    with pytest.raises(UsageError, match="at most 4096"):
        note_run(run_dir, "x" * 4097)


def test_a_change_to_a_record_waits_for_the_runs_lock(tmp_path: Path) -> None:
    import threading

    from reprise.commands.finish import run_lock

    run_dir = _finished(tmp_path)
    done = threading.Event()

    def tag() -> None:
        tag_run(run_dir, ["x"])
        done.set()

    with run_lock(run_dir):
        worker = threading.Thread(target=tag)
        worker.start()
        assert not done.wait(0.3)
    worker.join(5)
    assert done.is_set() and read_record(run_dir)["tags"] == ["x"]


# --- stop ----------------------------------------------------------------------------------
def test_stop_stops_the_job_and_records_interrupted(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_dir = _start(tmp_path, backend)
    job = _job(run_dir)
    record = stop_run(run_dir, timeout=3, open_for=lambda _: backend)
    assert backend.stopped == [job]
    assert record["status"] == "interrupted" and record["reason"] == STOPPED
    assert record["exit_code"] is None and record["stop_requested"]
    assert backend.jobs_made[job].removed  # tidied up, as Ctrl-C does
    assert stop_run(run_dir, open_for=lambda _: backend)["status"] == "interrupted"
    assert backend.stopped == [job]  # an ended run is left as it is


def test_a_run_stopped_while_another_cli_follows_it_is_interrupted_not_failed(
    tmp_path: Path,
) -> None:
    backend = FakeBackend(exit=JobExit(143))
    run_dir = _start(tmp_path, backend)
    assert request_stop(run_dir)
    backend.jobs_made[_job(run_dir)].phase = "ended"  # SIGTERM: exit code 143
    record = follow(backend, run_dir, say=lambda _: None, echo=False)
    assert record["status"] == "interrupted" and record["reason"] == STOPPED


def test_a_stopped_run_finished_by_ls_is_interrupted(tmp_path: Path) -> None:
    backend = FakeBackend(exit=JobExit(137))
    run_dir = _start(tmp_path, backend)
    request_stop(run_dir)
    backend.jobs_made[_job(run_dir)].phase = "ended"
    assert reconcile(backend, run_dir)["status"] == "interrupted"


def test_stop_of_a_run_whose_job_vanished_records_it_lost(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_dir = _start(tmp_path, backend)
    backend.jobs_made[_job(run_dir)].removed = True
    record = stop_run(run_dir, open_for=lambda _: backend)
    assert record["status"] == "lost" and backend.stopped == []


def test_stop_that_the_engine_refuses_leaves_the_run_running(tmp_path: Path) -> None:
    from reprise.core.errors import EngineError

    class Refusing(FakeBackend):
        def stop(self, job: str, *, timeout: int) -> None:
            raise EngineError("the engine said no")

    backend = Refusing()
    run_dir = _start(tmp_path, backend)
    with pytest.raises(EngineError):
        stop_run(run_dir, open_for=lambda _: backend)
    record = read_record(run_dir)
    assert record["status"] == "running" and "stop_requested" not in record


# --- logs ----------------------------------------------------------------------------------
def test_logs_of_an_ended_run_are_its_run_log(tmp_path: Path) -> None:
    run_dir = _finished(tmp_path)
    out = io.BytesIO()
    stream_logs(run_dir, out, follow=False, open_for=_no_engine)
    assert out.getvalue() == b"epoch 1\nepoch 2\n"


def test_logs_of_a_running_run_come_from_where_it_runs_with_secrets_masked(
    tmp_path: Path,
) -> None:
    backend = FakeBackend(output=["token is s3cr3t-value", "step 1"])
    env = resolve_env((), (), ("HF_TOKEN",), {"HF_TOKEN": "s3cr3t-value"})
    run_dir = _start(tmp_path, backend, env=env)
    out = io.BytesIO()
    stream_logs(run_dir, out, follow=True, open_for=lambda _: backend)
    assert b"s3cr3t" not in out.getvalue()
    assert out.getvalue().endswith(b"step 1\n") and b"token is " in out.getvalue()


def test_logs_fall_back_to_run_log_when_the_engine_is_gone(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_dir = _start(tmp_path, backend)
    (run_dir / "logs" / "run.log").write_bytes(b"so far\n")
    said: list[str] = []
    out = io.BytesIO()
    stream_logs(run_dir, out, follow=True, say=said.append, open_for=_no_engine)
    assert out.getvalue() == b"so far\n" and "no engine here" in said[0]


def test_a_link_planted_at_run_log_is_never_followed(tmp_path: Path) -> None:
    run_dir = _finished(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (run_dir / "logs" / "run.log").unlink()
    os.symlink(secret, run_dir / "logs" / "run.log")
    out = io.BytesIO()
    with pytest.raises(RecordError, match="is a symlink"):
        stream_logs(run_dir, out, follow=False, open_for=_no_engine)
    assert out.getvalue() == b""


def _no_engine(_: object) -> FakeBackend:
    from reprise.core.errors import EngineError

    raise EngineError("no engine here")


# --- rm ------------------------------------------------------------------------------------
def test_rm_refuses_a_running_run_and_removes_ended_ones(tmp_path: Path) -> None:
    backend = FakeBackend()
    running = _start(tmp_path, backend)
    ended = _finished(tmp_path)
    with pytest.raises(UsageError, match="is running: not removed"):
        check_removable([ended, running], open_for=lambda _: backend)
    found = check_removable([ended, ended], open_for=lambda _: backend)
    assert [p for p, _ in found] == [ended]
    (ended / "outputs" / "deep" / "er").mkdir(parents=True)
    os.symlink(tmp_path / "tiny", ended / "outputs" / "deep" / "link")
    remove_run(ended)
    assert not ended.exists() and (tmp_path / "tiny" / "pyproject.toml").is_file()
    assert not (ended.parent / f".{ended.name}.lock").exists()
    assert running.exists()


def test_rm_finishes_a_stale_running_record_first(tmp_path: Path) -> None:
    backend = FakeBackend()
    run_dir = _start(tmp_path, backend)
    backend.jobs_made[_job(run_dir)].removed = True
    [(_, record)] = check_removable([run_dir], open_for=lambda _: backend)
    assert record is not None and record["status"] == "lost"


def test_rm_refuses_a_directory_not_named_as_a_run(tmp_path: Path) -> None:
    odd = tmp_path / "project"
    odd.mkdir()
    (odd / "run.json").write_text("{}")
    with pytest.raises(UsageError, match="not named as a run directory"):
        check_removable([odd])
