"""Smaller promises of `reprise run`: Ctrl-C, GPU device requests, base tags resolved."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from reprise.commands import build as builder
from reprise.edges.container_config import ContainerSpec
from reprise.edges.docker import Engine

from ..engine_fixtures import Cleanup, container_state, start_cli_run


def test_ctrl_c_stops_and_removes_the_container_and_records_interrupted(
    example: Path, engine: Engine, image: builder.BuildResult
) -> None:
    cli, run_dir = start_cli_run(example, "working-for-ctrl-c")
    container = json.loads((run_dir / "run.json").read_text())["container"]["id"]
    cli.send_signal(signal.SIGINT)
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130, stderr
    assert "Traceback" not in stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and "Ctrl-C" in record["reason"]
    assert container_state(engine, container) is None


def test_gpus_become_device_requests(
    engine: Engine, image: builder.BuildResult, cleanup: Cleanup
) -> None:
    for gpus, count in (("all", -1), ("2", 2)):
        spec = ContainerSpec(
            image=image.image_id,
            command=["true"],
            environment={},
            mounts=[],
            working_dir="/",
            user="1000:1000",
            labels={},
            gpus=gpus,
        )
        container = cleanup.container(engine.create(spec))
        host = engine._client.api.inspect_container(container)["HostConfig"]
        requests = host["DeviceRequests"]
        assert requests and requests[0]["Count"] == count
        assert requests[0]["Capabilities"] == [["gpu"]]
        assert host["NetworkMode"] == "none"


def test_a_base_tag_is_resolved_to_its_digest_with_a_warning(
    engine: Engine, base_image: str
) -> None:
    repo = base_image.split("@")[0]
    said: list[str] = []
    resolved = builder.resolve_base(engine, f"{repo}:bookworm-python3", said.append)
    assert resolved == base_image
    assert any("tags move" in line for line in said)
    assert builder.resolve_base(engine, base_image, said.append) == base_image
