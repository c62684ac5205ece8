"""What every backend on a Docker engine shares, local or remote: images by id, the GPU
probe, and the job's container (attach, start, logs, wait, inspect, stop, remove)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from reprise.core import keys
from reprise.core.errors import EngineError, ImageUnavailableError
from reprise.core.progress import Say
from reprise.edges.container_config import SECURITY, ContainerSpec
from reprise.edges.docker import ContainerExit, Engine
from reprise.execution.backend import Backend, JobExit, JobSpec, JobState

GPU_HINT = (
    "install the NVIDIA Container Toolkit on this host (nvidia-ctk) and restart the engine, "
    "or run without --gpus"
)


def _exit(result: ContainerExit) -> JobExit:
    return JobExit(result.status_code, result.oom_killed, result.error)


class EngineBackend(Backend):
    """A backend whose jobs are containers of one Docker engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def security(self) -> dict[str, Any]:
        return dict(SECURITY)

    def has_image(self, image_id: str) -> bool:
        return self.engine.image_attrs(image_id) is not None

    def pull_image(self, ref: str, say: Say) -> str:
        return str(self.engine.pull(ref, progress=say)["Id"])

    def pull_any(self, image_id: str, refs: Sequence[str], say: Say) -> str | None:
        """Pull the first of ``refs`` that the engine gets; its id must be ``image_id``."""
        tried = []
        for ref in refs:
            say(f"pulling {ref}")
            try:
                got = self.pull_image(ref, say)
            except ImageUnavailableError as exc:
                tried.append(f"{ref} ({exc.message})")
                continue
            if got != image_id:
                raise ImageUnavailableError(
                    f"{ref} is image {got}, not the recorded {image_id}",
                    hint="the registry holds a different image under that name; pull by digest or use a bundle",
                )
            return f"pulled {ref}"
        self.tried = tried
        return None

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

    def remove(self, job: str) -> None:
        self.engine.remove_container(job)

    def jobs(self) -> list[str]:
        return self.engine.containers_with_label(keys.LABEL_RUN_DIR)
