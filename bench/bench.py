"""reprise's speed and memory figures, each against its baseline measured in the same run.

    make bench                 # everything (about 10 minutes on 2 cores)
    make bench BENCH_ARGS="--only help,ls --reps 7"

Baseline and reprise alternate, several repetitions each; the table shows medians and the
ratio, and bench/RESULTS.md is rewritten with the machine and the date. Nothing here is a
test: no figure fails the build; missed targets are fixed in the code (or argued in
RESULTS.md), never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
REPRISE = [str(VENV / "reprise")]
sys.path.insert(0, str(ROOT))

from tests.projects import copy_example, init_repo, tiny_project  # noqa: E402
from tests.recordcraft import valid_record  # noqa: E402


@dataclass
class Figure:
    name: str
    unit: str  # "s" (lower is better) or "MB/s" (higher is better)
    ours: float
    baseline: float | None
    target: str
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def run_rss(cmd: list[str], *, shell: bool = False) -> tuple[float, float]:
    """Wall time and peak RSS (MiB) of one process tree (the child and what it waited for)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        if shell:
            os.execv("/bin/bash", ["/bin/bash", "-c", cmd[0]])
        os.execv(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed")
    return elapsed, usage.ru_maxrss / 1024


def alternate(
    ours: Callable[[], float], base: Callable[[], float], reps: int
) -> tuple[float, float]:
    a, b = [], []
    for _ in range(reps):
        b.append(base())
        a.append(ours())
    return statistics.median(a), statistics.median(b)


def engine_env() -> dict[str, str]:
    line = (
        subprocess.run(
            ["bash", str(ROOT / "docker" / "engine.sh")], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    key, _, value = line.partition("=")
    return {key: value}


# --- figures -------------------------------------------------------------------------------
def fig_help(reps: int, _: Path) -> list[Figure]:
    ours, base = alternate(
        lambda: run([*REPRISE, "--help"]),
        lambda: run([str(VENV / "python"), "-c", "import click"]),
        reps,
    )
    return [Figure("`reprise --help`", "s", ours, base, "<= 2.0x", ours / base <= 2.0)]


def _tiny(work: Path) -> Path:
    root = tiny_project(work / "tiny")
    init_repo(root)
    subprocess.run([*REPRISE, "--project", str(root), "build"], check=True, capture_output=True)
    return root


def _reprise(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One `reprise` command in the project ``root``, its output captured; it must succeed."""
    return subprocess.run(
        [*REPRISE, "--project", str(root), *args], capture_output=True, text=True, check=True
    )


def _built(root: Path, *flags: str) -> dict[str, Any]:
    """`reprise build --json` of the project (reused when built): its image's tag and id."""
    return dict(json.loads(_reprise(root, "build", "--json", *flags).stdout))


def fig_warm_run(reps: int, work: Path) -> list[Figure]:
    root = _tiny(work)
    image = _built(root)["tag"]
    ours, base = alternate(
        lambda: run([*REPRISE, "--project", str(root), "run", "--", "true"]),
        lambda: run(["docker", "run", "--rm", "--network", "none", image, "true"]),
        reps,
    )
    mlflow, project, env = _mlflow(work)
    ours_again, mlflow_run = alternate(
        lambda: run([*REPRISE, "--project", str(root), "run", "--", "true"]),
        lambda: run(
            [str(mlflow), "run", str(project), "-e", "main", "--env-manager", "local"], env=env
        ),
        reps,
    )
    return [
        Figure("warm `reprise run -- true`", "s", ours, base, "<= 2.0x", ours / base <= 2.0),
        Figure(
            "warm `reprise run -- true` against `mlflow run`",
            "s",
            ours_again,
            mlflow_run,
            "<= 1.0x",
            ours_again <= mlflow_run,
            "baseline: `mlflow run` of an MLproject whose entry point is `true` (mlflow-skinny, "
            "local environment, its own file store), installed by the bench in a throwaway venv",
        ),
    ]


def _mlflow(work: Path) -> tuple[Path, Path, dict[str, str]]:
    """mlflow-skinny in a throwaway venv, an MLproject running `true`, and its own file store."""
    venv = work / "mlflow-venv"
    uv = str(ROOT / ".tools" / "bin" / "uv")
    subprocess.run([uv, "venv", "-q", str(venv), "--python", sys.executable], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "mlflow-skinny"],
        check=True,
    )
    project = work / "mlproject"
    project.mkdir()
    (project / "MLproject").write_text('name: bench\nentry_points:\n  main:\n    command: "true"\n')
    env = {
        "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    return venv / "bin" / "mlflow", project, env


def _build_context(root: Path, dest: Path) -> None:
    """The exact tar reprise sends to the engine for this project."""
    from reprise.commands.build import prepare
    from reprise.core.image import context_files, write_tar
    from reprise.edges.docker import Engine
    from reprise.edges.project import load_project, uv_binary

    project = load_project(root)
    inputs, plan, _ = prepare(project, Engine.from_env(), lambda _: None)
    files = context_files(
        plan,
        inputs,
        uv_binary=uv_binary(),
        ca_bundle=project.settings.ca_bundle,
        wheelhouse=project.settings.wheelhouse,
    )
    with dest.open("wb") as fh:
        write_tar(files, fh)


def fig_build(reps: int, work: Path) -> list[Figure]:
    root = _tiny(work)
    context = work / "context.tar"
    _build_context(root, context)
    env = {"DOCKER_BUILDKIT": "0"}  # the classic builder, as the Docker SDK uses

    def docker_build() -> float:
        start = time.perf_counter()
        with context.open("rb") as fh:
            subprocess.run(
                ["docker", "build", "-q", "--network", "host", "-t", "reprise-bench/cached", "-"],
                stdin=fh,
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
        return time.perf_counter() - start

    docker_build()  # warm the layer cache
    ours, base = alternate(
        lambda: run([*REPRISE, "--project", str(root), "build"]),
        lambda: docker_build() + run([str(VENV / "python"), "-c", "pass"]),
        reps,
    )
    return [
        Figure(
            "`reprise build`, unchanged project (whole process)",
            "s",
            ours,
            base,
            "<= 0.3 s, no build call",
            ours <= 0.3,
            "baseline: a fully cached `docker build` of the same context + Python start-up",
        )
    ]


def _files(root: Path, count: int, size: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    block = os.urandom(min(size, 1 << 20))
    for i in range(count):
        p = root / f"f{i:05d}.bin"
        with p.open("wb") as fh:
            left = size
            while left:
                n = min(left, len(block))
                fh.write(block[:n])
                left -= n
        paths.append(p)
    return paths


def _hash_cmd(root: Path) -> list[str]:
    code = (
        "import sys; from pathlib import Path; from reprise.edges.hashing import manifest_of_run; "
        "manifest_of_run(Path(sys.argv[1]))"
    )
    return [str(VENV / "python"), "-c", code, str(root)]


def _hash_in_process(root: Path) -> float:
    from reprise.edges.hashing import manifest_of_run

    start = time.perf_counter()
    manifest_of_run(root)
    return time.perf_counter() - start


def _cat(paths: list[Path]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-0", "cat"],
        input=b"\0".join(str(p).encode() for p in paths),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def fig_hash(reps: int, work: Path) -> list[Figure]:
    big_root = work / "big"
    big = _files(big_root / "outputs", 8, 256 << 20)
    small_root = work / "small"
    small = _files(small_root / "outputs", 10_000, 4096)
    _cat(big), _cat(small)  # into the page cache
    out = []
    ours, base = alternate(lambda: _hash_in_process(big_root), lambda: _cat(big), reps)
    total = 8 * 256 / 1024
    ours_tp, base_tp = total / ours * 1024, total / base * 1024
    out.append(
        Figure(
            "hashing 2 GiB of outputs (page cache)",
            "MB/s",
            ours_tp,
            base_tp,
            ">= 0.5x of cat",
            ours_tp / base_tp >= 0.5,
        )
    )
    import blake3

    def raw_blake3(threads: int) -> float:
        start = time.perf_counter()
        for p in big:
            h = blake3.blake3(max_threads=threads)
            h.update_mmap(p)
            h.hexdigest()
        return time.perf_counter() - start

    one = statistics.median(raw_blake3(1) for _ in range(reps))
    auto = statistics.median(raw_blake3(blake3.blake3.AUTO) for _ in range(reps))
    out.append(
        Figure(
            "ceiling: blake3 alone, 1 thread / all cores",
            "MB/s",
            total / auto * 1024,
            total / one * 1024,
            "(no target)",
            True,
            "reprise's hashing next to blake3 with nothing else: baseline column = 1 thread",
        )
    )
    ours, base = alternate(lambda: _hash_in_process(small_root), lambda: _cat(small), reps)
    mb = 10_000 * 4096 / 1e6
    out.append(
        Figure(
            "hashing 10,000 files of 4 KiB",
            "MB/s",
            mb / ours,
            mb / base,
            ">= 0.3x of cat",
            (mb / ours) / (mb / base) >= 0.3,
        )
    )
    shutil.rmtree(big_root)
    return out


def _example_run(work: Path) -> tuple[Path, str, float]:
    root = copy_example(work / "spiral")
    init_repo(root)
    subprocess.run([*REPRISE, "--project", str(root), "build"], check=True, capture_output=True)
    start = time.perf_counter()
    out = _reprise(root, "run", "--json").stdout
    return root, json.loads(out)["run_id"], time.perf_counter() - start


def fig_bundle(reps: int, work: Path) -> list[Figure]:
    root, run_id, _ = _example_run(work)
    record = json.loads((root / "runs" / "spiral" / run_id / "run.json").read_text())
    image_id, tag = record["image"]["id"], record["image"]["tag"]
    ours_file, base_file = work / "ours.reprise", work / "base.tar.zst"
    reprise_bin = str(VENV / "reprise")
    export_times, base_times, rss = [], [], []
    for _ in range(reps):
        t, _ = run_rss([f"docker save {image_id} | zstd -q -T0 -3 -f -o {base_file}"], shell=True)
        base_times.append(t)
        t, peak = run_rss(
            [reprise_bin, "--project", str(root), "bundle", "export", run_id, "-o", str(ours_file)]
        )
        export_times.append(t)
        rss.append(peak)
    size_ours, size_base = ours_file.stat().st_size, base_file.stat().st_size
    image_mb = (
        sum(
            m["size"]
            for m in json.loads(
                subprocess.run(
                    [*REPRISE, "bundle", "inspect", str(ours_file), "--json"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )["members"]
        )
        / 1e6
    )
    e_ours, e_base = statistics.median(export_times), statistics.median(base_times)
    figures = [
        Figure(
            f"`bundle export` of a {image_mb / 1000:.1f} GB image",
            "MB/s",
            image_mb / e_ours,
            image_mb / e_base,
            ">= 0.9x throughput",
            (e_base / e_ours) >= 0.9,
        ),
        Figure(
            "bundle size",
            "MB",
            size_ours / 1e6,
            size_base / 1e6,
            "<= 1.05x",
            size_ours / size_base <= 1.05,
        ),
        Figure("`bundle export` peak memory", "MiB", max(rss), None, "< 200 MiB", max(rss) < 200),
    ]
    import_times, load_times = [], []
    runs_dir = work / "imported"
    for _ in range(reps):
        subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True, check=False)
        load_times.append(run_rss([f"zstd -dc {base_file} | docker load"], shell=True)[0])
        subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True, check=False)
        shutil.rmtree(runs_dir, ignore_errors=True)
        import_times.append(
            run_rss([reprise_bin, "bundle", "import", str(ours_file), "--runs-dir", str(runs_dir)])[
                0
            ]
        )
    subprocess.run(["docker", "tag", image_id, tag], check=False)
    i_ours, i_base = statistics.median(import_times), statistics.median(load_times)
    figures.append(
        Figure(
            "`bundle import` of that bundle",
            "MB/s",
            image_mb / i_ours,
            image_mb / i_base,
            ">= 0.9x throughput",
            (i_base / i_ours) >= 0.9,
        )
    )
    return figures


def fig_ls(reps: int, work: Path) -> list[Figure]:
    runs = work / "runs"
    template = valid_record(
        experiment="bench",
        environment={"image": {}, "run": {f"VAR{i}": "x" * 20 for i in range(30)}, "user": {}},
        host={"hostname": "h", "gpu": {"gpus": []}},
        runtime={"packages": [f"pkg{i}==1.0" for i in range(60)]},
    )
    for i in range(10_000):
        d = runs / "bench" / f"20261123-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:08x}"
        d.mkdir(parents=True)
        (d / "run.json").write_text(
            json.dumps({**template, "run_id": d.name}, indent=2, sort_keys=True)
        )
    cold = run([*REPRISE, "ls", "--runs-dir", str(runs), "--json"])
    warm = statistics.median(
        run([*REPRISE, "ls", "--runs-dir", str(runs), "--json"]) for _ in range(reps)
    )
    return [
        Figure(
            "`reprise ls` over 10,000 runs (index warm)", "s", warm, None, "<= 0.5 s", warm <= 0.5
        ),
        Figure(
            "`reprise ls` over 10,000 runs (no index yet)",
            "s",
            cold,
            None,
            "(no target)",
            True,
            "the first listing reads every run.json and writes the index",
        ),
    ]


def fig_reproduce(reps: int, work: Path) -> list[Figure]:
    root, run_id, _ = _example_run(work)
    ours, base = [], []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([*REPRISE, "--project", str(root), "run"], check=True, capture_output=True)
        base.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(
            [*REPRISE, "--project", str(root), "reproduce", run_id], check=True, capture_output=True
        )
        ours.append(time.perf_counter() - start)
    o, b = statistics.median(ours), statistics.median(base)
    return [
        Figure(
            "`reprise reproduce` of the example",
            "s",
            o,
            b,
            "<= 1.1x the run",
            o / b <= 1.1,
            "baseline: `reprise run` of the same example, whole process",
        )
    ]


FINGERPRINT_SCRIPT = """
import statistics, sys, time
from pathlib import Path
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from reprise_runtime.fingerprint import DEFAULT_EVERY, Fingerprints
torch.manual_seed(0); torch.set_num_threads(1)
# The example's model and batch (examples/spiral/config.yaml: 2 layers of 64, batch 64).
model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                            torch.nn.ReLU(), torch.nn.Linear(64, 3))
opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=1e-4)
x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
def block(steps):
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    return (time.perf_counter() - start) / steps
block(200)
def hooked():
    handle = register_optimizer_step_post_hook(Fingerprints(Path("/tmp/fp.jsonl"), DEFAULT_EVERY))
    try:
        return block(2000)
    finally:
        handle.remove()
off, on = [], []
for rep in range(4 * int(sys.argv[1])):  # ABBA: the second block of a pair runs slower here
    if rep % 2 == 0:
        off.append(block(2000)); on.append(hooked())
    else:
        on.append(hooked()); off.append(block(2000))
print(statistics.median(on), statistics.median(off))
"""


def fig_fingerprint(reps: int, work: Path) -> list[Figure]:
    """Step fingerprints (every 50 optimizer steps, the default) on the example's training
    step, in the example's image: per-step time with the hook against without."""
    root = copy_example(work / "spiral")
    init_repo(root)
    image = _built(root)["id"]
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "python",
            "-c",
            FINGERPRINT_SCRIPT,
            str(reps),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    on, off = float(out[-2]), float(out[-1])
    return [
        Figure(
            "training step with step fingerprints (example model)",
            "s",
            on,
            off,
            "< 1.02x the step without",
            on / off < 1.02,
            "in the example's image, 1 thread, medians of 2000-step blocks in ABBA order",
        )
    ]


def _layers(root: Path, *flags: str) -> tuple[str, list[dict[str, object]], float]:
    from reprise.commands.layercache import load_layers

    os.sync()  # what the build before wrote (a GB for a cold one) is not this one's to flush
    start = time.perf_counter()
    image = _built(root, *flags)
    seconds = time.perf_counter() - start
    if not image["built"]:
        raise SystemExit(f"bench: {image['tag']} was up to date: that timed no build")
    return image["tag"], load_layers(image["id"]) or [], seconds


def _tag_of(root: Path) -> str:
    """The tag `reprise build` would give the project's image (its dry run says it)."""
    err = _reprise(root, "build", "--dry-run").stderr
    return err.split("image tag: ", 1)[1].split()[0]


def _forget(tag: str) -> None:
    """Remove an image and its build stage from the engine."""
    for ref in (tag, f"{tag}-build"):
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)


def fig_images(reps: int, work: Path) -> list[Figure]:
    """Add one small dependency to the example and rebuild: bytes that change (and would be
    pushed and pulled again) against the one-layer environment; rebuild time against a cold
    build (`build --no-cache`: no step of the engine's cache, every layer packed; a build that
    only removed the tags would reuse the steps other projects' builds left). One repetition:
    builds are minutes."""
    from tests.projects import commit_all, lock

    root = copy_example(work / "spiral")
    init_repo(root)
    _, before, cold = _layers(root, "--no-cache")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"numpy>=2.0",', '"numpy>=2.0",\n    "six>=1.16",')
    )
    lock(root, offline=False)
    commit_all(root, "add six")
    _forget(_tag_of(root))  # an image of this lock left by an earlier run is no rebuild
    tag2, after, rebuild = _layers(root)
    old = {str(layer["diff_id"]) for layer in before}
    changed = sum(int(str(layer["size"])) for layer in after if layer["diff_id"] not in old)
    total = sum(int(str(layer["size"])) for layer in after)
    _forget(tag2)
    return [
        Figure(
            "bytes changed by adding `six` (vs the one-layer env)",
            "MB",
            changed / 1e6,
            total / 1e6,
            "< 0.05x",
            changed < 0.05 * total,
            "uncompressed layer bytes not already in the engine (what a push sends)",
        ),
        Figure(
            "rebuild after adding `six` (vs a cold build)",
            "s",
            rebuild,
            cold,
            "< 0.25x",
            rebuild < 0.25 * cold,
            "`reprise build`, whole process; the heavy packages' step cached",
        ),
    ]


def _testhost(name: str) -> str:
    """``docker/testhosts.sh up NAME`` (idempotent): the host's ssh:// URL."""
    up = subprocess.run(
        ["bash", str(ROOT / "docker" / "testhosts.sh"), "up", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    for line in up.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == name:
            return parts[1]
    raise RuntimeError(f"testhosts.sh did not report {name}: {up.stdout[-2000:]}")


_WRITE_256 = (
    "import os; from pathlib import Path; d = Path(os.environ['REPRISE_OUTPUTS']); "
    "d.mkdir(parents=True, exist_ok=True); "
    "[(d / f'part{i}.bin').write_bytes(os.urandom(16 << 20)) for i in range(16)]"
)


def _exited(host: str, container: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["ssh", host, "docker", "inspect", "-f", "{{.State.Status}}", container],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if state == "exited":
            return
        time.sleep(0.5)
    raise RuntimeError(f"container {container} on {host} did not exit")


def fig_remote(reps: int, work: Path) -> list[Figure]:
    """A remote host over SSH (a network namespace made by docker/testhosts.sh): launch
    overhead against `ssh host docker run`, and the fetch of 256 MiB of outputs against
    `ssh host docker cp | tar x` of the same container's outputs."""
    from reprise.core import keys

    url = _testhost("h1")
    host = url.removeprefix("ssh://")
    root = _tiny(work)
    image_id = _built(root)["id"]
    remote_run = [*REPRISE, "--project", str(root), "run", "--host", url]
    run([*remote_run, "--", "true"])  # the image reaches the host once
    ours, base = alternate(
        lambda: run([*remote_run, "--", "true"]),
        lambda: run(["ssh", host, "docker", "run", "--rm", "--network", "none", image_id, "true"]),
        reps,
    )
    ours_fetch, base_fetch = [], []
    for _ in range(reps):
        started = json.loads(
            subprocess.run(
                [*remote_run, "--detach", "--json", "--", "python", "-c", _WRITE_256],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        container = started["container"]["id"]
        _exited(host, container)
        dest = work / "fetched"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        start = time.perf_counter()
        subprocess.run(
            f"ssh {host} docker cp {container}:{keys.CONTAINER_OUTPUTS} - | tar x -C {dest}",
            shell=True,
            check=True,
        )
        base_fetch.append(time.perf_counter() - start)
        ours_fetch.append(run([*REPRISE, "--project", str(root), "wait", started["run_id"]]))
    size = 256 * (1 << 20) / 1e6
    ours_rate, base_rate = (
        size / statistics.median(ours_fetch),
        size / statistics.median(base_fetch),
    )
    return [
        Figure(
            "remote `reprise run -- true` over SSH",
            "s",
            ours,
            base,
            "<= 2.0x",
            ours / base <= 2.0,
            "baseline: `ssh host docker run --rm --network none IMAGE true`",
        ),
        Figure(
            "fetching 256 MiB of remote outputs",
            "MB/s",
            ours_rate,
            base_rate,
            ">= 0.8x throughput",
            ours_rate >= 0.8 * base_rate,
            "`reprise wait` of a finished detached run (fetch, hash, record) against "
            "`ssh host docker cp CONTAINER:outputs - | tar x` of the same container",
        ),
    ]


# --- Slurm: submit to first output ----------------------------------------------------------
SLURM_MARKER = "first output"


def _first_line(cmd: list[str], env: dict[str, str], marker: str) -> float:
    """Seconds from starting ``cmd`` to ``marker`` on its output; then waits for its end."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    took = None
    for line in proc.stdout:
        if took is None and marker in line:
            took = time.perf_counter() - start
    if proc.wait() != 0 or took is None:
        raise RuntimeError(f"{cmd} failed or never printed {marker!r}")
    return took


def _bare_sbatch(image: str, env: dict[str, str], out: Path) -> float:
    """`sbatch --wrap 'docker run ...'`: seconds from sbatch to the marker in its output file,
    polled every 20 ms; then waits for the job to leave the queue."""
    script = f"print({SLURM_MARKER!r}, flush=True)"
    wrap = f'docker run --rm --network none {image} python -c "{script}"'
    start = time.perf_counter()
    job = subprocess.run(
        ["sbatch", "--parsable", f"--output={out}", "--wrap", wrap],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    took = None
    while took is None:
        if out.is_file() and SLURM_MARKER in out.read_text(errors="replace"):
            took = time.perf_counter() - start
        elif time.perf_counter() - start > 300:
            raise RuntimeError(f"job {job} never printed {SLURM_MARKER!r}")
        else:
            time.sleep(0.02)
    while subprocess.run(
        ["squeue", "-h", "-j", job], env={**os.environ, **env}, capture_output=True, text=True
    ).stdout.strip():
        time.sleep(0.2)
    return took


def fig_slurm(reps: int, work: Path) -> list[Figure]:
    """On the 2-node cluster of docker/slurm.sh (brought up here, torn down after)."""
    up = subprocess.run(
        ["bash", str(ROOT / "docker" / "slurm.sh"), "up"],
        capture_output=True,
        text=True,
        check=True,
    )
    key, _, conf = up.stdout.strip().splitlines()[-1].partition("=")
    env = {key: conf}
    try:
        root = copy_example(work / "spiral")
        init_repo(root)
        script = f"print({SLURM_MARKER!r}, flush=True)"
        cmd = [*REPRISE, "--project", str(root), "run", "--slurm", "--json"]
        # Warm: the image built here and loaded on both nodes, the runs dir checked as shared.
        warm = subprocess.run(
            [*cmd, "--nodes", "2", "--", "python", "-c", script],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        image = json.loads(warm.stdout)["image"]["id"]
        n = iter(range(10**6))
        o, b = alternate(
            lambda: _first_line([*cmd, "--", "python", "-c", script], env, SLURM_MARKER),
            lambda: _bare_sbatch(image, env, work / f"bare-{next(n)}.out"),
            reps,
        )
    finally:
        subprocess.run(
            ["bash", str(ROOT / "docker" / "slurm.sh"), "down"], capture_output=True, check=False
        )
    return [
        Figure(
            "`reprise run --slurm`: submit to first output (1 node)",
            "s",
            o,
            b,
            "<= 1.5x bare sbatch",
            o / b <= 1.5,
            "baseline: `sbatch --wrap 'docker run --rm IMAGE python -c print(...)'` on the same "
            "cluster (docker/slurm.sh, 2 nodes on this machine), its output file polled every "
            "20 ms; reprise's time includes its start-up, checks, the run record and the "
            "held submit + release",
        )
    ]


FIGURES: dict[str, Callable[[int, Path], list[Figure]]] = {
    "help": fig_help,
    "build": fig_build,
    "run": fig_warm_run,
    "hash": fig_hash,
    "ls": fig_ls,
    "reproduce": fig_reproduce,
    "bundle": fig_bundle,
    "fingerprint": fig_fingerprint,
    "images": fig_images,
    "remote": fig_remote,
    "slurm": fig_slurm,
}


def render(figures: list[Figure], reps: int) -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.machine(),
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        "# reprise benchmark results",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.platform()}",
        f"- engine: Docker {docker}; Python {platform.python_version()}; {reps} repetitions, medians, alternating",
        "",
        "| figure | reprise | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        base = f"{f.baseline:.3g} {f.unit}" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        lines.append(
            f"| {f.name} | {f.ours:.3g} {f.unit} | {base} | {ratio} | {f.target} | "
            f"{'yes' if f.met else '**no**'} |"
        )
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", *notes]
    analysis = ROOT / "bench" / "ANALYSIS.md"
    if analysis.is_file():
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(FIGURES), help="comma-separated: " + ", ".join(FIGURES)
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not rewrite bench/RESULTS.md")
    args = parser.parse_args()
    os.environ.update(engine_env())
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    figures: list[Figure] = []
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"reprise-bench-{name}-") as tmp:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            for f in FIGURES[name](args.reps, Path(tmp)):
                figures.append(f)
                ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
                base = f"{f.baseline:.3g}" if f.baseline is not None else "-"
                print(
                    f"{f.name:<58} ours {f.ours:8.3g} {f.unit:<5} base {base:>8}  ratio {ratio:>6}  "
                    f"target {f.target:<24} {'met' if f.met else 'MISSED'}",
                    flush=True,
                )
    text = render(figures, args.reps)
    if args.no_write:
        return 0
    if set(args.only.split(",")) != set(FIGURES):
        print(
            "bench: a partial run: bench/RESULTS.md is rewritten only by a run of every figure",
            file=sys.stderr,
        )
        return 0
    (ROOT / "bench" / "RESULTS.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
