"""The socket client's pure parts: sizes, host selection, the create body, HTTP parsing."""

from __future__ import annotations

import socket
import struct

import pytest

from reprise.dockerapi import _frames, _Response, create_config, parse_bytes, socket_path


@pytest.mark.parametrize(
    ("text", "value"),
    [("64m", 64 << 20), ("2g", 2 << 30), ("512", 512), ("1.5k", 1536), ("10MB", 10 << 20)],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_parse_bytes_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("lots")


def test_socket_path_only_for_local_sockets() -> None:
    assert socket_path({}) == "/var/run/docker.sock"
    assert (
        socket_path({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"})
        == "/run/user/1000/docker.sock"
    )
    assert socket_path({"DOCKER_HOST": "tcp://10.0.0.1:2376"}) is None
    assert socket_path({"DOCKER_HOST": "ssh://host"}) is None
    assert socket_path({"DOCKER_TLS_VERIFY": "1"}) is None


def test_create_config() -> None:
    config = create_config(
        image="sha256:abc",
        command=["python", "train.py"],
        environment={"A": "1"},
        mounts=[("/host/run", "/workspace/run", False), ("/host/code", "/workspace/code", True)],
        working_dir="/workspace/code",
        user="1000:1000",
        labels={"l": "v"},
        gpus="all",
        memory="64m",
        shm_size="1g",
        cpus=1.5,
    )
    host = config["HostConfig"]
    assert config["Cmd"] == ["python", "train.py"] and config["Env"] == ["A=1"]
    assert host["NetworkMode"] == "none"
    assert host["Mounts"][1] == {
        "Type": "bind",
        "Source": "/host/code",
        "Target": "/workspace/code",
        "ReadOnly": True,
    }
    assert host["DeviceRequests"][0]["Count"] == -1 and host["DeviceRequests"][0][
        "Capabilities"
    ] == [["gpu"]]
    assert (host["Memory"], host["ShmSize"], host["NanoCpus"]) == (64 << 20, 1 << 30, 1_500_000_000)
    bare = create_config(
        image="i",
        command=[],
        environment={},
        mounts=[],
        working_dir="/",
        user="0",
        labels={},
        gpus=None,
        memory=None,
        shm_size=None,
        cpus=None,
    )
    assert set(bare["HostConfig"]) == {"NetworkMode", "Mounts"}


def _response(raw: bytes) -> _Response:
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    return _Response(ours)


def test_response_with_content_length_and_chunked() -> None:
    r = _response(b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX: y\r\n\r\n{"a":1}')
    assert (r.status, r.headers["x"], r.read()) == (200, "y", b'{"a":1}')
    r = _response(
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
    )
    assert r.read() == b'{"a":1}'
    r = _response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 404 and r.read() == b""


def test_attach_frames_are_demultiplexed() -> None:
    body = b"".join(
        struct.pack(">BxxxL", stream, len(p)) + p
        for stream, p in [(1, b"out\n"), (2, b"err\n"), (1, b"")]
    )
    r = _response(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n" + body
    )
    assert list(_frames(r)) == [b"out\n", b"err\n"]


def test_not_http_is_an_error() -> None:
    with pytest.raises(ConnectionError, match="not an HTTP response"):
        _response(b"garbage\r\n\r\n")
