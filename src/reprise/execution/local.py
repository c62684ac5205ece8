"""Runs on a Docker engine whose files are this machine's: inputs and outputs by bind mount.

The job sees its code and frozen config read-only, each dataset read-only, and only the
writable subfolders of its run directory (never the run directory itself, where reprise keeps
its records). No network, no new privileges, no capabilities, a PIDs limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.errors import ImageUnavailableError
from reprise.core.progress import Say
from reprise.edges.container_config import ContainerSpec, Mount, OverlayMount
from reprise.edges.host import describe_host
from reprise.execution.backend import JobSpec
from reprise.execution.engine_backend import EngineBackend


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


class LocalBackend(EngineBackend):
    """The Docker engine of this machine (or one that shares its files)."""

    @property
    def executor(self) -> dict[str, Any]:
        return {"kind": "local", "host": None}

    def describe_host(self, image: str | None = None) -> dict[str, Any]:
        return describe_host(self.engine.version())

    def ensure_image(self, image_id: str, refs: Sequence[str], say: Say) -> str:
        if self.has_image(image_id):
            return "local"
        pulled = self.pull_any(image_id, refs, say)
        if pulled is None:
            raise unavailable(image_id, getattr(self, "tried", []))
        return pulled

    def create(self, spec: JobSpec) -> str:
        return self.engine.create(container_spec(spec))

    def collect(self, job: str, run_dir: Path, say: Say) -> None:
        """Nothing to bring back: the job wrote into the run directory itself."""
        return None

    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        mounts = [
            Mount(str(path.resolve()), f"/in/{name}", read_only=True)
            for name, path in sorted(inputs.items())
        ]
        return self.engine.run_capture(image, command, mounts=mounts)


def unavailable(image_id: str, tried: Sequence[str]) -> ImageUnavailableError:
    where = "; tried " + ", ".join(tried) if tried else ""
    return ImageUnavailableError(
        f"the run's image {image_id} is not where jobs run and could not be pulled{where}",
        hint=(
            "pass --registry HOST[/NAMESPACE] where it was pushed (reprise push), import the run's "
            "bundle (reprise bundle import), or --rebuild to build it anew from the recorded "
            "Dockerfile and uv.lock (a new artifact: not the original environment)"
        ),
    )
