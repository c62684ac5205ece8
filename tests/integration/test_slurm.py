"""Runs on a Slurm cluster, for real: docker/slurm.sh makes one on this machine (slurmctld here,
two nodes s1 and s2, each a network namespace with its own slurmd and dockerd; the runs
directory is the same file system on every node). Brought up once per session, torn down at
its end. The job is a 2-node, 2-rank CPU DDP training (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from reprise.commands import build as builder
from reprise.core import keys
from reprise.edges.docker import Engine
from reprise.edges.runstore import read_record
from reprise.execution.slurm import SlurmBackend

from ..projects import commit_all, copy_example, init_repo
from .test_reliability import REPRISE, _wait_for, reprise

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = ("s1", "s2")
HOSTS_STATE = Path(os.environ.get("REPRISE_HOSTS_STATE", "/var/lib/reprise-hosts"))
SLURM_STATE = Path(os.environ.get("REPRISE_SLURM_STATE", "/var/lib/reprise-slurm"))
DDP = '''\
"""Two-process CPU DDP (gloo): each rank trains on its own shard; the weights must agree."""
import os, time
import torch
import torch.distributed as dist
from reprise_runtime import outputs_dir

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
ddp = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
g = torch.Generator().manual_seed(1000 + rank)
x = torch.randn(256, 8, generator=g); y = (x.sum(1) > 0).long()
pause = float(os.environ.get("PAUSE", "0"))
for step in range(1, 31):
    loss = torch.nn.functional.cross_entropy(ddp(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    print(f"rank {rank}/{world} step {step} loss {loss.item():.6f}", flush=True)
    time.sleep(pause)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
assert all(torch.equal(gathered[0], t) for t in gathered), "ranks disagree"
if rank == 0:
    outputs_dir().mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), outputs_dir() / "model.pt")
    if os.environ.get("WRITE_WORK"):  # the working directory: the run's work/
        open("trained.txt", "w").write("done\\n")
    print("weights equal on all ranks", flush=True)
dist.destroy_process_group()
'''


def _podman(node: str, *args: str) -> str:
    """podman as node ``node``'s tasks run it (its own configuration and storage)."""
    conf = SLURM_STATE / "nodes" / node / "podman"
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(conf / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
    }
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    return done.stdout


def _slurm(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "docker" / "slurm.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def cluster(engine: Engine) -> Iterator[str]:
    """The cluster, up (its SLURM_CONF exported for reprise and the tests); down at the end."""
    if os.getuid() != 0 and not os.environ.get("REPRISE_REQUIRE_ENGINE"):
        pytest.skip("the test cluster needs root (network namespaces)")
    up = _slurm("up", *NODES)
    assert up.returncode == 0, up.stderr[-4000:]
    conf = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    try:
        for node in NODES:  # every test's containers are gone from the nodes
            sock = HOSTS_STATE / node / "docker.sock"
            if sock.exists():
                left = Engine.connect(f"unix://{sock}").containers_with_label(keys.LABEL_RUN_DIR)
                assert left == [], f"containers left behind on {node}"
            podman = _podman(
                node, "ps", "--all", "--quiet", "--filter", f"label={keys.LABEL_RUN_DIR}"
            )
            assert podman.strip() == "", f"podman containers left behind on {node}"
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        down = _slurm("down", *NODES)
        assert down.returncode == 0, down.stderr[-4000:]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str) -> Path:
    """The example project with a DDP script, its image built (shared with the example's)."""
    from reprise.edges.project import load_project

    root = copy_example(tmp_path_factory.mktemp("slurm") / "spiral")
    init_repo(root)
    (root / "ddp.py").write_text(DDP)
    commit_all(root, "ddp")
    builder.build(load_project(root), engine, lambda _: None)
    return root


@pytest.fixture(scope="module")
def podman_ddp(ddp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DDP project, its settings choosing Podman on the nodes."""
    root = tmp_path_factory.mktemp("podman") / "spiral"
    shutil.copytree(ddp, root, ignore=shutil.ignore_patterns("runs"))
    with (root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.reprise.slurm]\nruntime = "podman"\n')
    commit_all(root, "podman on the nodes")
    return root


def _record(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return dict(json.loads(result.stdout))


def _runs(project: Path) -> set[str]:
    runs = project / "runs" / "spiral"
    return (
        {p.name for p in runs.iterdir() if not p.name.startswith(".")} if runs.is_dir() else set()
    )


def _live(project: Path, cli: subprocess.Popen[str], before: set[str], marker: str) -> Path:
    """The run directory of the run ``cli`` started, once its merged log holds ``marker``."""

    def started() -> Path | None:
        assert cli.poll() is None, cli.communicate()[1][-4000:]
        for name in sorted(_runs(project) - before):
            run_dir = project / "runs" / "spiral" / name
            log = run_dir / "logs" / "run.log"
            if log.is_file() and marker in log.read_text(errors="replace"):
                return run_dir
        return None

    found: Path = _wait_for(started, timeout=300, what=f"{marker!r} in the run's log")
    return found


def _start(
    project: Path, pause: str, *flags: str, restore_sigint: bool = False
) -> subprocess.Popen[str]:
    args = ["run", "--slurm", "--nodes", "2", "--json", "--env", f"PAUSE={pause}", *flags]

    def default_sigint() -> None:  # pytest may run with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [*REPRISE, "--project", str(project), *args, "--", "python", "ddp.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint if restore_sigint else None,
    )


def test_dry_run_prints_the_batch_script_and_submits_nothing(cluster: str, ddp: Path) -> None:
    result = reprise(ddp, "run", "--slurm", "--nodes", "2", "--dry-run", "--", "python", "ddp.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#!/bin/bash\n")
    assert "#SBATCH --nodes=2" in result.stdout and "torchrun --nnodes" in result.stdout
    assert _runs(ddp) == set()
    refused = reprise(ddp, "run", "--dry-run")
    assert refused.returncode == 2 and "add --slurm" in refused.stderr


def test_a_two_node_ddp_run_is_recorded_per_rank_and_reproduces_identical(
    cluster: str, ddp: Path
) -> None:
    started = time.monotonic()
    args = ["run", "--slurm", "--nodes", "2", "--json", "--env", "WRITE_WORK=1"]
    result = reprise(ddp, *args, "--", "python", "ddp.py")
    assert result.returncode == 0, result.stderr[-4000:]
    took = time.monotonic() - started
    record = _record(result)
    assert record["status"] == "succeeded", (record.get("reason"), took)
    assert record["executor"]["kind"] == "slurm"
    assert record["executor"]["slurm"]["nodes"] == 2
    assert record["executor"]["slurm"]["world_size"] == 2
    assert record["container"]["security"]["network"] == "host"  # the cluster's network
    run_dir = ddp / "runs" / "spiral" / record["run_id"]
    for rank in (0, 1):
        assert f"rank {rank}/2 step 30" in (run_dir / "logs" / f"rank-{rank}.log").read_text()
        rank_record = json.loads((run_dir / "runtime" / f"rank-{rank}.json").read_text())
        assert rank_record["seed"] == str(record["seed"])  # seeded in every process
    merged = (run_dir / "logs" / "run.log").read_text()
    assert "[rank 0] rank 0/2 step 30" in merged and "[rank 1] rank 1/2 step 30" in merged
    assert "weights equal on all ranks" in merged
    assert (run_dir / "outputs" / "model.pt").is_file()
    assert (run_dir / "work" / "trained.txt").read_text() == "done\n"  # from the node's disk
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "work/trained.txt" in {f["path"] for f in manifest["files"]}
    assert (run_dir / "slurm" / "job.sbatch").is_file()
    assert "logs/rank-*.log" in record["volatile"]
    nodes = record["runtime"]["nodes"]  # each node's own description
    assert [n["hostname"] for n in nodes] == ["s1", "s2"] and all(n["cpu"] for n in nodes)

    ranks = SlurmBackend(lambda: cast(Any, None)).rank_targets(run_dir, read_record(run_dir))
    assert ranks is not None and [r["hostname"] for r in ranks] == ["s1", "s2"]
    assert all(r["cpu"] and r["cpu_count"] and r["threads"] for r in ranks), ranks

    # --strict: the nodes are asked what they are before the job is submitted
    again = reprise(ddp, "reproduce", record["run_id"], "--strict", "--json", timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    verdict = _record(again)
    assert verdict["verdict"] == "identical", verdict
    assert verdict["target"] == {"differences": [], "guaranteed": True}  # every rank's the same
    rerun = read_record(Path(verdict["rerun_dir"]))
    assert rerun["executor"]["slurm"] == record["executor"]["slurm"]


def test_a_two_node_ddp_run_on_podman_succeeds_and_leaves_nothing_behind(
    cluster: str, podman_ddp: Path
) -> None:
    """Each node's Podman (its own storage, as a real node's) loads the image from the
    archive beside the runs and runs the node's ranks as Docker's would."""
    args = ["run", "--slurm", "--nodes", "2", "--json", "--", "python", "ddp.py"]
    result = reprise(podman_ddp, *args)
    assert result.returncode == 0, result.stderr[-4000:]
    record = _record(result)
    assert record["status"] == "succeeded", record.get("reason")
    assert record["executor"]["slurm"]["runtime"] == "podman"
    assert record["container"]["security"]["network"] == "host"
    run_dir = podman_ddp / "runs" / "spiral" / record["run_id"]
    assert "podman run --interactive --name" in (run_dir / "slurm" / "job.sbatch").read_text()
    for rank in (0, 1):
        assert f"rank {rank}/2 step 30" in (run_dir / "logs" / f"rank-{rank}.log").read_text()
        rank_record = json.loads((run_dir / "runtime" / f"rank-{rank}.json").read_text())
        assert rank_record["seed"] == str(record["seed"])
    assert (run_dir / "outputs" / "model.pt").is_file() and record["manifest"]["complete"]
    nodes = record["runtime"]["nodes"]
    assert [n["hostname"] for n in nodes] == ["s1", "s2"]
    assert all(n.get("podman_version") for n in nodes), nodes
    image = record["image"]["id"].removeprefix("sha256:")
    for node in NODES:  # loaded by the node itself, the container gone
        assert image in _podman(node, "images", "--quiet", "--no-trunc")
        assert _podman(node, "ps", "--all", "--quiet").strip() == ""


def test_scancel_mid_run_is_interrupted_with_slurms_reason(cluster: str, ddp: Path) -> None:
    before = _runs(ddp)
    cli = _start(ddp, "1")
    run_dir = _live(ddp, cli, before, "step 3 ")
    job = read_record(run_dir)["container"]["id"]
    subprocess.run(["scancel", job], check=True, timeout=60)
    _out, err = cli.communicate(timeout=300)
    assert "Traceback (most recent call last)" not in err.split("[slurm]")[0]
    record = read_record(run_dir)
    assert record["status"] == "interrupted", (record.get("reason"), err[-2000:])
    assert f"Slurm job {job} cancelled" in record["reason"]
    assert cli.returncode != 0


def test_a_node_whose_slurmd_dies_mid_run_fails_with_the_reason(cluster: str, ddp: Path) -> None:
    """With requeue off: with it on (the default), Slurm requeues the job of a lost node, and
    the run waits for nodes to come back, as the requeue test's does."""
    before = _runs(ddp)
    cli = _start(ddp, "3", "--no-requeue")
    run_dir = _live(ddp, cli, before, "step 2 ")
    try:
        stopped = _slurm("slurmd-stop", "--kill", "s2", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        _out, err = cli.communicate(timeout=300)
        record = read_record(run_dir)
        assert record["status"] == "failed", (record.get("reason"), err[-2000:])
        assert "NODE_FAIL" in record["reason"]
        assert cli.returncode not in (0, None)
    finally:
        up = _slurm("up", *NODES)  # s2 back: its slurmd ends what was left of the job there
        assert up.returncode == 0, up.stderr[-4000:]
    sock = HOSTS_STATE / "s2" / "docker.sock"
    node = Engine.connect(f"unix://{sock}")
    _wait_for(
        lambda: node.containers_with_label(keys.LABEL_RUN_DIR) == [],
        timeout=120,
        what="the job's container on s2 to go",
    )


def _node_part(run_dir: Path, node: str) -> list[int]:
    """The pids of node ``node``'s part of the run (``bash SCRIPT node``, as srun started it)
    and of its children (the docker client, the lifeline's keeper)."""
    part = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if (
            argv[0].rsplit(b"/", 1)[-1] == b"bash"
            and len(argv) > 2
            and argv[1].startswith(str(run_dir).encode())
            and argv[2:3] == [b"node"]
            and f"SLURMD_NODENAME={node}".encode() in environ
        ):
            part.append(int(proc.name))
    children = []
    for pid in part:
        with open(f"/proc/{pid}/task/{pid}/children") as kids:
            children += [int(k) for k in kids.read().split()]
    return part + children


@pytest.mark.parametrize("project", ["ddp", "podman_ddp"])
def test_a_node_part_killed_outright_leaves_no_container_running(
    cluster: str, project: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL, as Slurm's own kill or a node's lost slurmd leaves it: no trap runs, the
    client dies, and the container must still stop (its stdin lifeline) rather than train on.
    Docker's also removes itself; Podman's stays, stopped (its state is read before removal)."""
    ddp = cast(Path, request.getfixturevalue(project))
    label = f"label={keys.LABEL_RUN_DIR}"
    before = _runs(ddp)
    cli = _start(ddp, "2", "--no-requeue")
    run_dir = _live(ddp, cli, before, "step 2 ")
    node = Engine.connect(f"unix://{HOSTS_STATE / 's2' / 'docker.sock'}")

    def running() -> int:
        if project == "ddp":
            return len(node.containers_with_label(keys.LABEL_RUN_DIR))
        return len(_podman("s2", "ps", "--quiet", "--filter", label).split())

    assert running() == 1
    pids = _node_part(run_dir, "s2")
    assert len(pids) >= 2, pids  # the part and its client at least
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: running() == 0, timeout=60, what="the job's container on s2 to stop")
    _out, err = cli.communicate(timeout=300)
    record = read_record(run_dir)
    assert record["status"] == "failed", (record.get("reason"), err[-2000:])
    assert cli.returncode not in (0, None)
    assert "step 30" not in (run_dir / "logs" / "rank-1.log").read_text()  # it trained no more
    if project == "podman_ddp":
        stopped = _podman("s2", "ps", "--all", "--quiet", "--filter", label).split()
        assert len(stopped) == 1  # stopped, kept: `podman container prune` removes it
        _podman("s2", "rm", *stopped)


@pytest.mark.parametrize("project", ["ddp", "podman_ddp"])
def test_a_job_killed_for_memory_on_a_node_fails_with_the_reason(
    cluster: str, project: str, request: pytest.FixtureRequest
) -> None:
    """Docker's from the engine's events (its container removed itself). Podman 4.3's conmon
    cannot see an OOM kill on this machine's cgroup v1 (its state says false): the record must
    then not claim one either way, only the exit code."""
    ddp = cast(Path, request.getfixturevalue(project))
    hog = "b = bytearray(300 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    args = ["run", "--slurm", "--nodes", "1", "--memory", "64m", "--json"]
    result = reprise(ddp, *args, "--", "python", "-c", hog, timeout=300)
    assert result.returncode == 1, result.stderr[-4000:]
    record = _record(result)
    assert record["status"] == "failed" and record["exit_code"] == 137
    exit_file = ddp / "runs" / "spiral" / record["run_id"] / "slurm" / "node-0.exit"
    if project == "ddp":
        assert record["reason"].startswith("out of memory (memory limit 64m)"), record["reason"]
        assert exit_file.read_text().split() == ["137", "true"]
    else:
        assert exit_file.read_text().split() == ["137", "unknown"]
        assert "137" in record["reason"] and "memory" not in record["reason"]


def test_a_runs_dir_not_shared_with_the_nodes_is_refused_before_submitting(
    cluster: str, ddp: Path, tmp_path: Path
) -> None:
    """The runs directory on a tmpfs mounted in reprise's own mount namespace only: the nodes
    see an empty folder there."""
    private = tmp_path / "private"
    private.mkdir()
    runs = private / "runs"
    script = (
        f"mount -t tmpfs none {private} && "
        f"REPRISE_RUNS_DIR={runs} exec {' '.join(REPRISE)} --project {ddp} "
        "run --slurm --nodes 2 -- python ddp.py"
    )
    jobs_before = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 3, done.stderr  # StorageError
    assert "is not shared with the cluster's nodes" in done.stderr
    assert "Traceback" not in done.stderr
    jobs_after = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    assert jobs_after == jobs_before


def test_ctrl_c_cancels_the_job_and_records_interrupted(cluster: str, ddp: Path) -> None:
    before = _runs(ddp)
    cli = _start(ddp, "1", restore_sigint=True)
    run_dir = _live(ddp, cli, before, "step 2 ")
    job = read_record(run_dir)["container"]["id"]
    cli.send_signal(signal.SIGINT)
    _out, err = cli.communicate(timeout=300)
    assert cli.returncode == 130, err[-2000:]
    record = read_record(run_dir)
    assert record["status"] == "interrupted" and "Ctrl-C" in record["reason"]
    queued = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
    assert queued.stdout.strip() == ""  # cancelled, not left running


def test_a_detached_run_is_followed_again_by_attach(cluster: str, ddp: Path) -> None:
    args = ["run", "--slurm", "--nodes", "2", "--detach", "--json", "--env", "PAUSE=0.2"]
    started = reprise(ddp, *args, "--", "python", "ddp.py")
    assert started.returncode == 0, started.stderr[-4000:]
    run_id = _record(started)["run_id"]
    attached = reprise(ddp, "attach", run_id, timeout=300)
    assert attached.returncode == 0, attached.stderr[-4000:]
    assert "[rank 1] rank 1/2 step 30" in attached.stdout + attached.stderr
    record = read_record(ddp / "runs" / "spiral" / run_id)
    assert record["status"] == "succeeded" and record["manifest"]["complete"]


def test_a_requeued_job_is_followed_through_its_restart_as_one_run(cluster: str, ddp: Path) -> None:
    before = _runs(ddp)
    cli = _start(ddp, "0.5")
    run_dir = _live(ddp, cli, before, "step 3 ")
    job = read_record(run_dir)["container"]["id"]
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    out, err = cli.communicate(timeout=400)
    assert cli.returncode == 0, err[-4000:]
    record = json.loads(out)
    assert record["run_id"] == run_dir.name and _runs(ddp) - before == {run_dir.name}  # one run
    assert record["status"] == "succeeded", record.get("reason")
    assert record["container"]["id"] == job  # the same job throughout
    assert record["runtime"]["requeues"] == [{"restart": 1, "reason": "JOB REQUEUE"}]
    for rank in (0, 1):  # the restarted attempt's output apart from the first's
        first = (run_dir / "logs" / f"rank-{rank}.log").read_text()
        again = (run_dir / "logs" / f"rank-{rank}.restart-1.log").read_text()
        assert f"rank {rank}/2 step 3 " in first and f"rank {rank}/2 step 30" not in first
        assert f"rank {rank}/2 step 1 " in again and f"rank {rank}/2 step 30" in again
    merged = (run_dir / "logs" / "run.log").read_text()
    assert f"reprise: job {job} restarted (restart 1)" in merged
    assert "[rank 1, restart 1] rank 1/2 step 30" in merged
    assert (run_dir / "outputs" / "model.pt").is_file() and record["manifest"]["complete"]
