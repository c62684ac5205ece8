"""The engine restarted under a running job (last of the integration tests: it stops dockerd).

The run must end `failed` or `lost` with the engine's reason, and the CLI must say so
without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from reprise.commands import build as builder
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record

from ..engine_fixtures import start_cli_run

ROOT = Path(__file__).resolve().parents[2]


def _engine_answers() -> bool:
    return subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0


def _dockerd_pids() -> list[int]:
    """The main engine's dockerd, by its pid file (the test hosts' engines are left alone)."""
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        return []
    return [pid] if Path(f"/proc/{pid}").exists() else []


def test_engine_restart_mid_run(example: Path, engine: Engine, image: builder.BuildResult) -> None:
    cli, run_dir = start_cli_run(
        example, "started-for-restart", {"REPRISE_ENGINE_RECOVERY_S": "90"}
    )
    pids = _dockerd_pids()
    assert pids, "this test restarts a dockerd it can see; none found"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _engine_answers() and time.monotonic() < deadline:
            time.sleep(0.5)
        while _dockerd_pids() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        subprocess.run(
            ["bash", str(ROOT / "docker" / "engine.sh")], check=True, capture_output=True
        )
    stdout, stderr = cli.communicate(timeout=240)
    assert cli.returncode != 0
    assert "Traceback" not in stderr, stderr
    record = read_record(run_dir)
    assert record["status"] in ("failed", "lost"), record["status"]
    assert "engine" in (record["reason"] or ""), record["reason"]
    assert json.loads(stdout)["status"] == record["status"]
    assert (run_dir / "FAILED").is_file()
