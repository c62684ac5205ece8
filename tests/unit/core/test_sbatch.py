"""The Slurm batch scripts, whole (golden files, one per container runtime), and the values
that go into them."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from reprise.core.errors import UsageError
from reprise.core.resources import Resources
from reprise.core.sbatch import (
    BatchJob,
    Bind,
    enroot_ref,
    job_environment,
    render_sbatch,
    security,
)
from reprise.core.slurm import SlurmOptions

from ..golden import check_golden

RUN = "/shared/runs/spiral/20261130-101112-1a2b3c4d"
CODE = "/shared/runs/.cache/code/" + "c" * 40
IMAGE = "sha256:" + "e" * 64
REF = "127.0.0.1:5000/team/spiral@sha256:" + "d" * 64


def _job(**changes: object) -> BatchJob:
    job = BatchJob(
        run_id="20261130-101112-1a2b3c4d",
        run_dir=RUN,
        image_id=IMAGE,
        command=("python", "train.py", "--note", "it's $HOME"),
        env_names=("OMP_NUM_THREADS", "REPRISE_SEED", "WANDB_API_KEY"),
        binds=(
            Bind(f"{RUN}/outputs", "/workspace/run/outputs", False),
            Bind(f"{RUN}/logs", "/workspace/run/logs", False),
            Bind(f"{RUN}/config.yaml", "/workspace/run/config.yaml", True),
            Bind(CODE, "/workspace/code", True),
        ),
        workdir="/workspace/work",
        user="1000:1000",
        labels={"org.reprise.run-id": "20261130-101112-1a2b3c4d", "org.reprise.run-dir": RUN},
        threads=2,
        resources=Resources(memory="8g"),
        work=CODE,
        owner="1000:1000",
        archive="/shared/runs/.cache/images/" + "e" * 64 + ".tar",
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def _bash_parses(text: str) -> None:
    done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_golden_sbatch_docker_two_nodes() -> None:
    text = render_sbatch(_job(), SlurmOptions(nodes=2, partition="cpu", time="0:30:00"))
    _bash_parses(text)
    check_golden("slurm/docker-2-nodes.sbatch", text)


def test_golden_sbatch_docker_one_node_one_rank() -> None:
    text = render_sbatch(_job(owner=None), SlurmOptions())
    _bash_parses(text)
    assert "torchrun" not in text and "--network none" in text
    check_golden("slurm/docker-1-node.sbatch", text)


def test_one_node_ranks_meet_on_its_loopback_in_the_batch_step() -> None:
    """A one-node job's container has no network: its ranks' rendezvous is its loopback, not
    the node's address; its part runs in the batch step, no job step launched."""
    text = render_sbatch(_job(), SlurmOptions(nodes=1, gpus_per_node=4))
    _bash_parses(text)
    assert "--network none" in text and "--nproc-per-node=4" in text
    assert "MASTER_ADDR=127.0.0.1\n" in text and "NodeAddr" not in text
    assert "srun --nodes" not in text and "/slurm/job.sbatch node || status=$?\n" in text


def test_golden_sbatch_docker_gpus() -> None:
    options = SlurmOptions(nodes=2, gpus_per_node=4, account="ml", partition="gpu")
    text = render_sbatch(_job(), options)
    _bash_parses(text)
    assert "--nproc-per-node=4" in text and "#SBATCH --gpus-per-node=4" in text
    check_golden("slurm/docker-gpus.sbatch", text)


def test_golden_sbatch_podman_gpus() -> None:
    """Podman on the nodes: the Docker script's shape; GPUs by CDI names, the overlay as
    podman mounts one, the image compared by podman's bare id, its state read before it goes."""
    options = SlurmOptions(nodes=2, gpus_per_node=4, runtime="podman")
    text = render_sbatch(_job(), options)
    _bash_parses(text)
    assert "docker" not in text.replace("docker-archive", "")
    assert f"!= {IMAGE.removeprefix('sha256:')} ]" in text
    assert 'gpus+=(--device "nvidia.com/gpu=$d")' in text
    assert ":O,upperdir=$upper,workdir=$scratch" in text
    assert "podman run --interactive --name" in text  # no --rm: OOMKilled is read first
    check_golden("slurm/podman-gpus.sbatch", text)


def test_golden_sbatch_apptainer() -> None:
    options = SlurmOptions(nodes=2, gpus_per_node=8, runtime="apptainer", time="2-00:00:00")
    text = render_sbatch(_job(work=None, workdir="/workspace/code", image_ref=REF), options)
    _bash_parses(text)
    assert "apptainer exec --nv --containall --cleanenv --no-privs \\\n" in text
    assert f"docker://{REF}" in text
    check_golden("slurm/apptainer.sbatch", text)


def test_golden_sbatch_pyxis() -> None:
    options = SlurmOptions(nodes=4, gpus_per_node=8, runtime="pyxis", partition="a100,h100")
    text = render_sbatch(_job(work=None, workdir="/workspace/code", image_ref=REF), options)
    _bash_parses(text)
    assert "--container-image=127.0.0.1:5000#team/spiral@sha256:" in text
    check_golden("slurm/pyxis.sbatch", text)


def test_no_value_of_the_run_environment_is_in_the_script() -> None:
    text = render_sbatch(_job(), SlurmOptions(nodes=2))
    assert "--env WANDB_API_KEY" in text and "WANDB_API_KEY=" not in text


def test_paths_that_need_quoting_are_refused() -> None:
    for bad in ("/runs/with space", "/runs/100%", "/runs/a,b", "/runs/a:b", '/runs/"x', "/a/../b"):
        with pytest.raises(UsageError):
            render_sbatch(_job(run_dir=bad), SlurmOptions())


def test_runtimes_that_pull_need_a_digest() -> None:
    with pytest.raises(UsageError, match="digest"):
        render_sbatch(_job(), SlurmOptions(runtime="pyxis"))


def test_enroot_reference_puts_the_registry_before_a_hash_sign() -> None:
    assert enroot_ref("ghcr.io/acme/x@sha256:ab") == "ghcr.io#acme/x@sha256:ab"
    assert enroot_ref("localhost/x@sha256:ab") == "localhost#x@sha256:ab"
    assert enroot_ref("acme/x@sha256:ab") == "acme/x@sha256:ab"


def test_multi_node_jobs_have_the_network_and_gpu_jobs_pin_nccl() -> None:
    assert security(SlurmOptions(nodes=2))["network"] == "host"
    assert security(SlurmOptions(nodes=1, gpus_per_node=8))["network"] == "none"
    assert "NCCL_ALGO" not in job_environment({"A": "1"}, SlurmOptions(nodes=2))
    pinned = job_environment({"NCCL_PROTO": "LL"}, SlurmOptions(gpus_per_node=2))
    assert pinned["NCCL_ALGO"] == "Ring" and pinned["NCCL_PROTO"] == "LL"


def test_requeue_is_asked_for_unless_turned_off_and_restarts_log_apart() -> None:
    assert "#SBATCH --requeue\n" in render_sbatch(_job(), SlurmOptions())
    off = render_sbatch(_job(), SlurmOptions(requeue=False))
    assert "#SBATCH --no-requeue\n" in off and "#SBATCH --requeue" not in off
    assert "rank-${RANK:-0}.restart-$SLURM_RESTART_COUNT.log" in off
    assert "SLURM_RESTART_COUNT" in off.split("for v in ", 1)[1].split(";", 1)[0]


def test_sbatch_gets_what_a_shell_needs_and_the_runs_variables_never_the_users_secrets() -> None:
    from reprise.core.sbatch import submit_env

    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "HF_TOKEN": "hf_x",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "DOCKER_HOST": "ssh://elsewhere",
        "APPTAINER_CACHEDIR": "/scratch/cache",
    }
    env = submit_env(environ, {"REPRISE_SEED": "1", "HF_TOKEN": "given to the run"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "APPTAINER_CACHEDIR": "/scratch/cache",
        "REPRISE_SEED": "1",
        "HF_TOKEN": "given to the run",  # a secret the user gave the run, by name
    }
