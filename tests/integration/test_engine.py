"""The engine edge against the real Docker engine: build, run, push and pull by digest."""

from __future__ import annotations

import dataclasses
import io
import tarfile
import uuid
from pathlib import Path

from reprise.core.resources import Resources
from reprise.edges.container_config import ContainerSpec, Mount
from reprise.edges.docker import Engine

from ..engine_fixtures import Cleanup


def _context(dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_build_and_run_a_container(
    engine: Engine, base_image: str, cleanup: Cleanup, tmp_path: Path
) -> None:
    tag = cleanup.image(f"reprise-test/engine:{uuid.uuid4().hex[:12]}")
    lines: list[str] = []
    image_id = engine.build(
        _context(f"FROM {base_image}\nRUN echo built > /built.txt\n"), tag, progress=lines.append
    )
    assert image_id.startswith("sha256:")
    assert any(line.startswith("Step 2/2") for line in lines)

    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    spec = ContainerSpec(
        image=tag,
        command=["sh", "-c", "cat /built.txt > /out/result.txt; python3 -c 'print(6*7)'"],
        environment={},
        mounts=[Mount(source=str(out), target="/out", read_only=False)],
        working_dir="/",
        user="1000:1000",
        labels={"org.reprise.test": "1"},
    )
    cid = cleanup.container(engine.create(spec))
    engine.start(cid)
    logs = b"".join(engine.logs(cid)).decode()
    result = engine.wait(cid)
    assert result.status_code == 0
    assert logs.strip() == "42"
    assert (out / "result.txt").read_text() == "built\n"


def test_run_has_no_network(engine: Engine, base_image: str) -> None:
    out = engine.run_capture(base_image, ["sh", "-c", "ls /sys/class/net"])
    assert out.split() == ["lo"]


def test_push_and_pull_by_digest(engine: Engine, base_image: str, cleanup: Cleanup) -> None:
    tag = uuid.uuid4().hex[:12]
    repo = "127.0.0.1:5000/reprise-test/engine"
    engine.tag(base_image, repo, tag)
    cleanup.image(f"{repo}:{tag}")
    digest = engine.push(repo, tag)
    assert digest.startswith("sha256:")
    assert engine.registry_digest(f"{repo}:{tag}") == digest
    engine.remove_image(f"{repo}:{tag}")
    attrs = engine.pull(cleanup.image(f"{repo}@{digest}"))
    assert f"{repo}@{digest}" in attrs["RepoDigests"]


def test_run_containers_are_hardened_and_limited(
    engine: Engine, base_image: str, cleanup: Cleanup
) -> None:
    """Every run container: no network, no new privileges, no capabilities, a PIDs limit, and
    the resource limits asked for; checked on the created container and inside it."""
    spec = ContainerSpec(
        image=base_image,
        command=[
            "sh",
            "-c",
            "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ],
        environment={},
        mounts=[],
        working_dir="/",
        user="1000:1000",
        labels={"org.reprise.test": "1"},
        gpus="2",
        resources=Resources(memory="64m", cpus=0.5, pids_limit=321),
    )
    cid = cleanup.container(engine.create(spec))
    attrs = engine.inspect_container(cid)
    assert attrs is not None
    host = attrs["HostConfig"]
    assert (host["NetworkMode"], host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (
        "none",
        64 << 20,
        500_000_000,
        321,
    )
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["CapDrop"] == ["ALL"]
    assert host["DeviceRequests"][0]["Count"] == 2
    assert attrs["State"]["Status"] == "created"
    plain = dataclasses.replace(spec, gpus=None)  # this engine has no GPU runtime
    cid = cleanup.container(engine.create(plain))
    engine.start(cid)
    assert engine.wait(cid).status_code == 0
    out = b"".join(engine.logs(cid)).decode().split()
    assert out == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1", "321"]
