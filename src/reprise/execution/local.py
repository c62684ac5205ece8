"""Runs on a Docker engine whose files are this machine's: inputs and outputs by bind mount.

The job sees its code and frozen config read-only, each dataset read-only, and only the
writable subfolders of its run directory (never the run directory itself, where reprise keeps
its records). No network, no new privileges, no capabilities, a PIDs limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.errors import EngineError
from reprise.core.progress import Say
from reprise.edges.container_config import SECURITY, ContainerSpec, Mount, OverlayMount
from reprise.edges.docker import ContainerExit, Engine
from reprise.edges.host import describe_host
from reprise.execution.backend import Backend, JobExit, JobSpec, JobState

GPU_HINT = (
    "install the NVIDIA Container Toolkit on this host (nvidia-ctk) and restart the engine, "
    "or run without --gpus"
)


def _exit(result: ContainerExit) -> JobExit:
    return JobExit(result.status_code, result.oom_killed, result.error)


def job_mounts(spec: JobSpec) -> list[Mount | OverlayMount]:
    """Writable subfolders, then the read-only inputs, then the working directory (the code
    with the run's work/ over it); every source resolved on this host."""
    run_dir = spec.run_dir.resolve()
    mounts: list[Mount | OverlayMount] = [
        Mount(str(run_dir / sub), f"{keys.CONTAINER_RUN}/{sub}", read_only=False)
        for sub in spec.writable
    ]
    mounts.append(Mount(str(spec.config.resolve()), keys.CONTAINER_CONFIG, read_only=True))
    mounts.append(Mount(str(spec.code.resolve()), keys.CONTAINER_CODE, read_only=True))
    for data in spec.data:
        target = f"{keys.CONTAINER_DATA}/{data.name}"
        if data.is_file:
            target += f"/{data.source.name}"
        mounts.append(Mount(str(data.source.resolve()), target, read_only=True))
    if spec.work is not None:
        mounts.append(
            OverlayMount(
                lower=str(spec.code.resolve()),
                upper=str(run_dir / spec.work),
                scratch=str(run_dir / keys.RUN_OVERLAY_DIR),
                target=keys.CONTAINER_WORK,
            )
        )
    return mounts


def working_dir(spec: JobSpec) -> str:
    base = keys.CONTAINER_WORK if spec.work is not None else keys.CONTAINER_CODE
    return f"{base}/{spec.workdir}" if spec.workdir else base


def container_spec(spec: JobSpec) -> ContainerSpec:
    return ContainerSpec(
        image=spec.image,
        command=list(spec.command),
        environment=dict(spec.environment),
        mounts=job_mounts(spec),
        working_dir=working_dir(spec),
        user=spec.user,
        labels=dict(spec.labels),
        gpus=spec.gpus,
        resources=spec.resources,
        network=spec.network,
    )


class LocalBackend(Backend):
    """The Docker engine of this machine (or one that shares its files)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def security(self) -> dict[str, Any]:
        return dict(SECURITY)

    def describe_host(self) -> dict[str, Any]:
        return describe_host(self.engine.version())

    def has_image(self, image_id: str) -> bool:
        return self.engine.image_attrs(image_id) is not None

    def pull_image(self, ref: str, say: Say) -> str:
        return str(self.engine.pull(ref, progress=say)["Id"])

    def check(self, spec: JobSpec) -> None:
        """With GPUs asked for, start a throw-away container with the same device request:
        an engine without a GPU runtime fails it here, before any run directory exists."""
        if not spec.gpus:
            return
        probe = ContainerSpec(
            image=spec.image,
            command=["true"],
            environment={},
            mounts=[],
            working_dir="/",
            user=spec.user,
            labels={},
            gpus=spec.gpus,
        )
        container = self.engine.create(probe)
        try:
            self.engine.start(container)
            self.engine.wait(container)
        except EngineError as exc:
            if "device driver" in exc.message or "gpu" in exc.message.lower():
                raise EngineError(
                    f"--gpus {spec.gpus}: this engine cannot give containers GPUs ({exc.message})",
                    hint=GPU_HINT,
                ) from exc
            raise
        finally:
            self.engine.remove_container(container)

    def create(self, spec: JobSpec) -> str:
        return self.engine.create(container_spec(spec))

    def attach(self, job: str) -> Iterator[bytes]:
        return self.engine.attach(job)

    def start(self, job: str) -> None:
        self.engine.start(job)

    def logs(self, job: str, *, follow: bool) -> Iterator[bytes]:
        return self.engine.logs(job, follow=follow)

    def wait(self, job: str) -> JobExit:
        return _exit(self.engine.wait(job))

    def state(self, job: str) -> JobState | None:
        attrs = self.engine.inspect_container(job)
        if attrs is None:
            return None
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        env = dict(str(item).partition("=")[::2] for item in config.get("Env") or [])
        labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
        if state.get("Running") or state.get("Restarting"):
            return JobState("running", None, env, labels)
        if state.get("Status") == "created":
            return JobState("created", None, env, labels)
        ended = JobExit(
            status_code=int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            error=state.get("Error") or None,
        )
        return JobState("ended", ended, env, labels)

    def stop(self, job: str, *, timeout: int) -> None:
        self.engine.stop(job, timeout=timeout)

    def collect(self, job: str, run_dir: Path) -> None:
        """Nothing to bring back: the job wrote into the run directory itself."""
        return None

    def remove(self, job: str) -> None:
        self.engine.remove_container(job)

    def jobs(self) -> list[str]:
        return self.engine.containers_with_label(keys.LABEL_RUN_DIR)

    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        mounts = [
            Mount(str(path.resolve()), f"/in/{name}", read_only=True)
            for name, path in sorted(inputs.items())
        ]
        return self.engine.run_capture(image, command, mounts=mounts)
