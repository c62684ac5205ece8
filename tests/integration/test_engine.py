"""The engine edge against the real Docker engine: build, run, push and pull by digest."""

from __future__ import annotations

import dataclasses
import io
import tarfile
import uuid
from pathlib import Path

from reprise.engine import ContainerSpec, Engine, Mount

from .conftest import Cleanup


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


def test_socket_client_and_docker_sdk_create_the_same_container(
    engine: Engine, base_image: str, cleanup: Cleanup, tmp_path: Path
) -> None:
    """The hot path (Unix socket) and the SDK path (remote engines) send one request body."""
    import docker

    sdk = Engine(docker.from_env())
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    spec = ContainerSpec(
        image=base_image,
        command=["sh", "-c", "echo $GREETING > /out/$NAME; echo done"],
        environment={"GREETING": "hi"},
        mounts=[Mount(source=str(out), target="/out", read_only=False)],
        working_dir="/",
        user="1000:1000",
        labels={"org.reprise.test": "1"},
        gpus="2",
        memory="64m",
        cpus=0.5,
    )
    configs = []
    for name, eng in (("fast", engine), ("sdk", sdk)):
        cid = cleanup.container(
            eng.create(dataclasses.replace(spec, environment={"GREETING": "hi", "NAME": name}))
        )
        attrs = eng._client.api.inspect_container(cid)
        host = attrs["HostConfig"]
        configs.append(
            (
                host["NetworkMode"],
                host["Memory"],
                host["NanoCpus"],
                host["DeviceRequests"][0]["Count"],
                attrs["Config"]["User"],
                attrs["Config"]["Labels"],
                [m["Destination"] for m in attrs["Mounts"]],
            )
        )
        state = eng.container_state(cid)
        assert state is not None and state["Status"] == "created"
    assert configs[0] == configs[1]
    assert configs[0][:4] == ("none", 64 << 20, 500_000_000, 2)
