"""Fixtures for tests against the real Docker engine and the local registry (the integration
and adversarial suites; loaded as a plugin by tests/conftest.py, evaluated only when asked for).

`make test` brings both up first (docker/engine.sh) and exports REPRISE_BASE_IMAGE. Run
directly without an engine, these tests are skipped, unless REPRISE_REQUIRE_ENGINE=1 (as
`make test` sets), in which case a missing engine is an error.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reprise.commands import build as builder
from reprise.commands import inputs as run_inputs
from reprise.commands import run as runner
from reprise.core.errors import EngineError
from reprise.edges.docker import Engine
from reprise.edges.project import Project, load_project
from reprise.edges.runstore import read_record
from reprise.execution.local import LocalBackend

from .projects import copy_example, init_repo

# Scripts added to the example's copy, each provoking one behaviour.
EXTRA_SCRIPTS = {
    # Never seeds anything itself.
    "unseeded.py": (
        "import numpy as np, torch, random\n"
        "from reprise_runtime import outputs_dir\n"
        "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'draws.txt').write_text(f'{random.random()!r} {np.random.rand()!r} {torch.rand(3).tolist()!r}\\n')\n"
    ),
    "fail.py": "import sys\nprint('about to fail')\nsys.exit(3)\n",
    # One deterministic output, one that holds the wall-clock time.
    "clock.py": (
        "import time\nfrom reprise_runtime import outputs_dir\n"
        "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'fixed.txt').write_text('always the same\\n')\n"
        "(d / 'time.txt').write_text(repr(time.time()))\n"
    ),
    # A resumable training: shuffling DataLoader with workers, dropout, momentum, an LR
    # schedule, checkpoints every 5 steps (the newest 2 kept), best by loss.
    "resumable.py": (
        "import os, time, torch\n"
        "from reprise_runtime import log_metrics, outputs_dir\n"
        "from reprise_runtime.checkpoint import Checkpoints\n"
        "from reprise_runtime.data import ResumableSampler, loader\n"
        "class Data(torch.utils.data.Dataset):\n"
        "    def __init__(self):\n"
        "        g = torch.Generator().manual_seed(0)\n"
        "        self.x = torch.randn(256, 8, generator=g); self.y = (self.x.sum(1) > 0).long()\n"
        "    def __len__(self): return 256\n"
        "    def __getitem__(self, i): return self.x[i], self.y[i]\n"
        "data = Data()\n"
        "model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 2))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)\n"
        "sampler = ResumableSampler(len(data), seed=None)\n"
        "ckpt = Checkpoints(every=5, keep_last=2, best=('loss', 'min'))\n"
        "start = ckpt.resume(model=model, optimizer=opt, scheduler=sched, sampler=sampler)\n"
        "step, epoch = start.step, start.epoch\n"
        "pause = float(os.environ.get('PAUSE', '0'))\n"
        "while epoch < 5:\n"
        "    for x, y in loader(data, sampler, epoch, batch_size=32, num_workers=2):\n"
        "        step += 1\n"
        "        loss = torch.nn.functional.cross_entropy(model(x), y)\n"
        "        opt.zero_grad(); loss.backward(); opt.step(); sched.step()\n"
        "        log_metrics(step=step, loss=loss.item(), lr=sched.get_last_lr()[0])\n"
        "        print('step', step, flush=True)\n"
        "        ckpt.step(step, epoch=epoch, metrics={'loss': loss.item()}, model=model, optimizer=opt, scheduler=sched, sampler=sampler)\n"
        "        time.sleep(pause)\n"
        "    epoch += 1\n"
        "outputs_dir().mkdir(parents=True, exist_ok=True)\n"
        "torch.save(model.state_dict(), outputs_dir() / 'model.pt')\n"
    ),
    # Deterministic until step 37, where real entropy enters the gradient.
    "drift37.py": (
        "import os, torch\n"
        "from reprise_runtime import outputs_dir\n"
        "from reprise_runtime import watch\n"
        "model = torch.nn.Linear(4, 2); opt = torch.optim.SGD(model.parameters(), lr=0.01); watch(model)\n"
        "x = torch.randn(64, 4); y = torch.randn(64, 2)\n"
        "for step in range(1, 61):\n"
        "    opt.zero_grad(); loss = ((model(x) - y) ** 2).mean(); loss.backward()\n"
        "    if step >= 37:\n"
        "        model.weight.grad += (1 + int.from_bytes(os.urandom(2), 'big')) * 1e-9\n"
        "    opt.step()\n"
        "outputs_dir().mkdir(parents=True, exist_ok=True)\n"
        "torch.save(model.state_dict(), outputs_dir() / 'weights.pt')\n"
    ),
    # The same drift, with a checkpoint every 10 steps that a resumed run starts from.
    "drift37ckpt.py": (
        "import os, torch\n"
        "from reprise_runtime import outputs_dir, watch\n"
        "from reprise_runtime.checkpoint import Checkpoints\n"
        "model = torch.nn.Linear(4, 2); opt = torch.optim.SGD(model.parameters(), lr=0.01); watch(model)\n"
        "x = torch.randn(64, 4); y = torch.randn(64, 2)\n"
        "ckpt = Checkpoints(every=10)\n"
        "start = ckpt.resume(model=model, optimizer=opt)\n"
        "for step in range(start.step + 1, 61):\n"
        "    opt.zero_grad(); loss = ((model(x) - y) ** 2).mean(); loss.backward()\n"
        "    if step >= 37:\n"
        "        model.weight.grad += (1 + int.from_bytes(os.urandom(2), 'big')) * 1e-9\n"
        "    opt.step()\n"
        "    ckpt.step(step, model=model, optimizer=opt)\n"
        "outputs_dir().mkdir(parents=True, exist_ok=True)\n"
        "torch.save(model.state_dict(), outputs_dir() / 'weights.pt')\n"
    ),
    # An operation without a deterministic implementation, on CPU too.
    "putop.py": (
        "import torch\n"
        "x = torch.zeros(4); x.put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))\n"
        "print('put done', flush=True)\n"
    ),
    # Metrics identical up to step 4, then perturbed by real entropy.
    "drift.py": (
        "import os\nfrom reprise_runtime import log_metrics\n"
        "for step in range(1, 9):\n"
        "    noise = int.from_bytes(os.urandom(4), 'big') * 1e-12 if step >= 5 else 0.0\n"
        "    log_metrics(step=step, loss=1.0 / step + noise, lr=0.1)\n"
    ),
}


def quiet(_: str) -> None:
    return None


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.from_env()
    except EngineError as exc:
        if os.environ.get("REPRISE_REQUIRE_ENGINE") == "1":
            pytest.fail(f"no Docker engine: {exc.render()}")
        pytest.skip("no Docker engine (run `make engine`)")


@pytest.fixture(scope="session")
def backend(engine: Engine) -> LocalBackend:
    return LocalBackend(engine)


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    ref = os.environ.get("REPRISE_BASE_IMAGE")
    if not ref:
        pytest.fail("REPRISE_BASE_IMAGE is not set: run the tests through `make test`")
    return ref


class Cleanup:
    """Remembers what a test made in the engine and removes it afterwards."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.images: list[str] = []
        self.containers: list[str] = []

    def image(self, ref: str) -> str:
        self.images.append(ref)
        return ref

    def container(self, container_id: str) -> str:
        self.containers.append(container_id)
        return container_id

    def run(self) -> None:
        for cid in self.containers:
            self.engine.remove_container(cid)
        for ref in self.images:
            self.engine.remove_image(ref, force=True)


@pytest.fixture()
def cleanup(engine: Engine) -> Iterator[Cleanup]:
    c = Cleanup(engine)
    yield c
    c.run()


@pytest.fixture(scope="session")
def no_containers_left_behind(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every container a test's run started is gone at the end (runs live under the tmp base)."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    with contextlib.suppress(EngineError):
        for container in engine.containers_with_label("org.reprise.run-dir"):
            attrs = engine.inspect_container(container) or {}
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            if str(labels.get("org.reprise.run-dir", "")).startswith(base):
                engine.remove_container(container)


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str) -> Path:
    """A committed copy of examples/spiral, plus EXTRA_SCRIPTS, in its own git repository."""
    root = copy_example(tmp_path_factory.mktemp("example") / "spiral")
    for name, text in EXTRA_SCRIPTS.items():
        (root / name).write_text(text)
    init_repo(root)
    return root


@pytest.fixture(scope="session")
def project(example: Path) -> Project:
    return load_project(example)


@pytest.fixture(scope="session")
def image(project: Project, engine: Engine) -> builder.BuildResult:
    """The example's image: built once per machine (content-addressed), then reused."""
    return builder.build(project, engine, quiet)


class Sink:
    """Collects the job's console output instead of the terminal."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        return None


def run_example(
    project: Project,
    engine: Engine,
    image: builder.BuildResult,
    *,
    command: list[str] | None = None,
    seed: int | None = None,
    allow_dirty: bool = False,
    overrides: tuple[str, ...] = (),
) -> tuple[Path, dict[str, Any]]:
    inputs = run_inputs.prepare_run(
        project,
        overrides=overrides,
        seed=seed,
        command=command,
        allow_dirty=allow_dirty,
        gpus=None,
        threads=None,
    )
    run_dir = runner.execute(
        LocalBackend(engine),
        inputs,
        builder.run_image(image),
        say=quiet,
        console=Sink(),  # type: ignore[arg-type]
    )
    return run_dir, read_record(run_dir)


def start_cli_run(
    example: Path, marker: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    """`reprise run` of a job that prints ``marker`` then sleeps, in its own process; returns
    the process and the run directory once the job has printed the marker."""
    script = f"import time\nprint({marker!r}, flush=True)\ntime.sleep(120)\n"
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reprise",
            "--project",
            str(example),
            "run",
            "--json",
            "--",
            "python",
            "-c",
            script,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    runs = example / "runs" / "spiral"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for p in sorted(runs.iterdir()) if runs.is_dir() else []:
            log = p / "logs" / "run.log"
            if not p.name.startswith(".") and log.is_file() and marker in log.read_text():
                return cli, p
        time.sleep(0.2)
    cli.kill()
    raise AssertionError(f"the job never printed {marker!r}")


def container_state(engine: Engine, container: str) -> dict[str, Any] | None:
    """The container's State as the engine reports it, or None when it is gone."""
    attrs = engine.inspect_container(container)
    return None if attrs is None else dict(attrs.get("State") or {})
