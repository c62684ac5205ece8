"""Which engine a run goes to: the flags, the settings, then the docker environment, where
DOCKER_HOST pointing at another machine is a remote engine (streamed, never bind-mounted)."""

from __future__ import annotations

import pytest

from reprise.core.errors import UsageError
from reprise.execution import resolve_target


def test_docker_host_on_another_machine_is_a_remote_target() -> None:
    target = resolve_target(environ={"DOCKER_HOST": "ssh://me@gpu-box"})
    assert (target.host, target.origin, target.remote) == ("ssh://me@gpu-box", "DOCKER_HOST", True)
    tcp = resolve_target(environ={"DOCKER_HOST": "tcp://gpu-box:2376"})
    assert tcp.remote and tcp.host == "tcp://gpu-box:2376"


def test_a_local_socket_is_this_machines_engine_and_the_flag_comes_first() -> None:
    local = resolve_target(environ={"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert local.host is None and not local.remote
    flag = resolve_target(host="ssh://other", environ={"DOCKER_HOST": "ssh://me@gpu-box"})
    assert flag.host == "ssh://other" and flag.origin == "--host"


def test_a_docker_host_that_is_no_address_is_refused() -> None:
    with pytest.raises(UsageError):
        resolve_target(environ={"DOCKER_HOST": "ssh://gpu box;rm -rf /"})
