"""Faults provoked for real: a killed CLI, a vanished container, OOM, a full disk, 20
launches at once, secrets. After each, the record must be true and complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zstandard

from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record

from ..engine_fixtures import container_state

REPRISE = [sys.executable, "-m", "reprise"]
COUNT_SLOWLY = (
    "import time\nfor i in range(8):\n    print('line', i, flush=True)\n    time.sleep(0.5)\n"
)


def reprise(
    example: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REPRISE, "--project", str(example), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _newest_run(example: Path, after: set[str]) -> Path | None:
    runs = example / "runs" / "spiral"
    fresh = (
        sorted(
            p
            for p in runs.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name not in after
        )
        if runs.is_dir()
        else []
    )
    return fresh[-1] if fresh else None


def _run_names(example: Path) -> set[str]:
    runs = example / "runs" / "spiral"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def _log(run_dir: Path) -> bytes:
    try:
        return (run_dir / "logs" / "run.log").read_bytes()
    except FileNotFoundError:
        return b""


@pytest.fixture()
def slow_script(example: Path) -> Iterator[str]:
    (example / "runs").mkdir(exist_ok=True)
    yield COUNT_SLOWLY


def test_killed_cli_then_attach_finishes_the_run(
    example: Path, engine: Engine, image: builder.BuildResult, slow_script: str
) -> None:
    before = _run_names(example)
    cli = subprocess.Popen(
        [*REPRISE, "--project", str(example), "run", "--", "python", "-c", slow_script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run_dir = _wait_for(lambda: _newest_run(example, before), what="the run directory")
    container = _wait_for(
        lambda: (read_record(run_dir).get("container") or {}).get("id"), what="the container id"
    )
    _wait_for(lambda: b"line 1" in _log(run_dir), what="some output")
    cli.send_signal(signal.SIGKILL)
    cli.wait(timeout=10)
    state = container_state(engine, container)
    assert state is not None and state["Running"], "the container must outlive the CLI"
    assert read_record(run_dir)["status"] == "running"
    attached = reprise(example, "attach", run_dir.name, "--json")
    assert attached.returncode == 0, attached.stderr
    record = json.loads(attached.stdout)
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    log = (run_dir / "logs/run.log").read_text().splitlines()
    assert log == [f"line {i}" for i in range(8)]  # every line once: nothing lost, nothing twice
    assert "line 7" in attached.stderr
    assert container_state(engine, container) is None  # removed once finished


def test_detach_then_wait(example: Path, image: builder.BuildResult) -> None:
    started = time.monotonic()
    result = reprise(example, "run", "--detach", "--json", "--", "python", "-c", COUNT_SLOWLY)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    record = json.loads(result.stdout)
    assert record["status"] == "running" and record["container"]["id"]
    assert f"reprise attach {record['run_id']}" in result.stderr
    waited = reprise(example, "wait", record["run_id"], "--json")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"
    assert "line 3" not in waited.stderr  # wait does not echo the output
    run_dir = example / "runs" / "spiral" / record["run_id"]
    assert (run_dir / "logs/run.log").read_text().count("line") == 8


def test_ls_reconciles_exited_and_vanished_containers(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    done = json.loads(
        reprise(example, "run", "--detach", "--json", "--", "python", "-c", "print('quick')").stdout
    )
    gone = json.loads(reprise(example, "run", "--detach", "--json", "--", "sleep", "60").stdout)
    _wait_for(
        lambda: not (container_state(engine, done["container"]["id"]) or {}).get("Running"),
        what="exit",
    )
    engine.remove_container(gone["container"]["id"])
    listed = reprise(example, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    by_id = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert (
        by_id[done["run_id"]]["status"] == "succeeded" and by_id[done["run_id"]]["exit_code"] == 0
    )
    assert by_id[gone["run_id"]]["status"] == "lost"
    assert "no longer exists in the engine" in by_id[gone["run_id"]]["reason"]
    done_dir = example / "runs" / "spiral" / done["run_id"]
    assert "quick" in (done_dir / "logs/run.log").read_text()
    assert (done_dir / "manifest.json").is_file()
    assert not any(
        r["status"] == "running"
        for r in json.loads(reprise(example, "ls", "--json").stdout)
        if r["run_id"] in (done["run_id"], gone["run_id"])
    )


def test_oom_killed_run_is_failed_with_the_reason(
    example: Path, image: builder.BuildResult
) -> None:
    hog = "b = bytearray(300 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')\n"
    result = reprise(example, "run", "--json", "--memory", "64m", "--", "python", "-c", hog)
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert record["reason"].startswith("out of memory (memory limit 64m)")
    assert record["resources"]["memory"] == "64m" and record["container"]["memory"] == "64m"
    run_dir = example / "runs" / "spiral" / record["run_id"]
    assert "out of memory" in (run_dir / "FAILED").read_text()


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_while_finishing_is_a_clear_error_and_the_record_survives(
    example: Path, engine: Engine, image: builder.BuildResult, small_disk: Path
) -> None:
    fill = "import os\nf = open(os.environ['REPRISE_OUTPUTS'] + '/fill', 'wb')\ntry:\n    while True: f.write(b'x' * 65536); f.flush()\nexcept OSError as e:\n    print('disk full:', e.strerror)\n"
    env = {"REPRISE_RUNS_DIR": str(small_disk)}
    result = reprise(example, "run", "--", "python", "-c", fill, env=env)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert (
        "the disk refused a write" in result.stderr and "No space left on device" in result.stderr
    )
    assert "the previous run.json is intact" in result.stderr and "Traceback" not in result.stderr
    run_dir = next(p for p in (small_disk / "spiral").iterdir() if not p.name.startswith("."))
    record = read_record(run_dir)  # still valid JSON: never half-written
    assert record["status"] == "running" and record["container"]["id"]
    (run_dir / "outputs" / "fill").unlink()
    listed = reprise(example, "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["status"] == "succeeded"
    assert read_record(run_dir)["manifest"] is not None


def test_twenty_runs_at_once(example: Path, image: builder.BuildResult) -> None:
    before = _run_names(example)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(
            pool.map(
                lambda i: reprise(
                    example, "run", "--json", f"+launch={i}", "--", "python", "-c", f"print({i})"
                ),
                range(20),
            )
        )
    records = []
    for i, r in enumerate(results):
        assert r.returncode == 0, (i, r.stderr[-2000:])
        records.append(json.loads(r.stdout))
    ids = {rec["run_id"] for rec in records}
    assert len(ids) == 20 and not ids & before
    for i, rec in enumerate(records):
        run_dir = example / "runs" / "spiral" / rec["run_id"]
        on_disk = read_record(run_dir)
        assert on_disk["status"] == "succeeded" and on_disk["manifest"] is not None
        assert f"launch: {i}" in (run_dir / "config.yaml").read_text()
        assert (run_dir / "logs/run.log").read_text().strip() == str(i)
    listed = json.loads(reprise(example, "ls", "--json").stdout)
    assert ids <= {r["run_id"] for r in listed}


def test_secret_values_never_reach_records_cards_or_bundles(
    example: Path, image: builder.BuildResult, tmp_path: Path
) -> None:
    host = {"API_TOKEN": "tok-4f9a1c7e", "CUSTOM_THING": "cust-0b2d8e55", "PLAIN": "visible-value"}
    show = (
        "import os\nfor n in ('API_TOKEN', 'CUSTOM_THING', 'PLAIN'):\n    print(n, os.environ[n])\n"
        "os.makedirs(os.environ['REPRISE_OUTPUTS'], exist_ok=True)\n"
        "open(os.environ['REPRISE_OUTPUTS'] + '/plain.txt', 'w').write(os.environ['PLAIN'])\n"
    )
    result = reprise(
        example,
        "run",
        "--json",
        "--env",
        "API_TOKEN",
        "--env",
        "PLAIN",
        "--secret",
        "CUSTOM_THING",
        "--",
        "python",
        "-c",
        show,
        env=host,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    run_dir = example / "runs" / "spiral" / record["run_id"]
    assert record["environment"]["secrets"] == ["API_TOKEN", "CUSTOM_THING"]
    assert record["environment"]["user"] == {"PLAIN": "visible-value"}
    log = (run_dir / "logs/run.log").read_text()
    assert "API_TOKEN ***" in log and "CUSTOM_THING ***" in log and "PLAIN visible-value" in log
    bundle = tmp_path / "secret.reprise"
    exported = reprise(
        example, "bundle", "export", record["run_id"], "-o", str(bundle), "--with-outputs"
    )
    assert exported.returncode == 0, exported.stderr
    everything = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    with bundle.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as stream:
        unpacked = stream.read()
    for value in ("tok-4f9a1c7e", "cust-0b2d8e55"):
        assert value.encode() not in everything
        assert value.encode() not in unpacked
        assert value not in result.stderr and value not in result.stdout
    assert b"visible-value" in everything
    missing = reprise(example, "reproduce", record["run_id"], env={})
    assert missing.returncode == 2 and "whose value is never recorded" in missing.stderr
    again = reprise(example, "reproduce", record["run_id"], "--json", env=host)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["verdict"] == "identical"
