"""The first process of a Slurm node's container (reprise_runtime.lifeline), as a container's
init on the real engine: the job inside cannot kill it, and the end of its stdin ends the
container however the job behaves."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from reprise.commands import build as builder

from .test_reliability import _wait_for

pytestmark = pytest.mark.integration

# The job tries to cut its tie: SIGKILL and SIGTERM to its init, and it ignores SIGTERM.
HOSTILE = (
    'trap "" TERM; kill -KILL 1; kill -STOP 1; kill -TERM 1; echo alive; '
    "while :; do sleep 0.2; done"
)


def _running(name: str) -> bool:
    out = subprocess.run(
        ["docker", "ps", "--quiet", "--filter", f"name=^{name}$"], capture_output=True, text=True
    )
    return bool(out.stdout.strip())


def test_a_job_cannot_kill_its_init_and_the_end_of_stdin_ends_it(
    image: builder.BuildResult,
) -> None:
    name = f"reprise-lifeline-test-{os.getpid()}"
    read, write = os.pipe()
    docker = subprocess.Popen(
        [
            *("docker", "run", "--rm", "--interactive", "--network", "none", "--name", name),
            *("--label", "org.reprise.test=lifeline", image.image_id),
            *("python", "-S", "-m", "reprise_runtime.lifeline", "--grace", "2", "--"),
            *("sh", "-c", HOSTILE),
        ],
        stdin=read,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(read)
    try:
        assert docker.stdout is not None
        assert docker.stdout.readline() == b"alive\n", docker.stderr
        time.sleep(1)
        assert _running(name)  # its init outlived the job's signals
        started = time.monotonic()
        os.close(write)  # the node's part is gone
        status = docker.wait(timeout=30)
        assert status == 137  # TERM ignored: KILL after the grace, as the shell says it
        assert time.monotonic() - started >= 1.5
        _wait_for(lambda: not _running(name), timeout=30, what="the container to go")
    finally:
        if docker.poll() is None:
            docker.kill()
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)
