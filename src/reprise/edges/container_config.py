"""What a run's container is, as the Docker Engine API takes it: a pure value and the JSON body
of its creation. Every run container gets no network, no new privileges, no capabilities and a
PIDs limit (:data:`SECURITY`, recorded in run.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reprise.core.errors import UsageError
from reprise.core.resources import Resources, parse_bytes


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class OverlayMount:
    """``lower`` (read-only, never changed) with ``upper`` over it at ``target``: what the
    container writes there lands in ``upper``; ``scratch`` is the kernel's own work folder
    (empty, on the same filesystem as ``upper``)."""

    lower: str
    upper: str
    scratch: str
    target: str

    def options(self) -> str:
        for path in (self.lower, self.upper, self.scratch):
            if any(c in path for c in OVERLAY_UNSAFE):
                raise UsageError(
                    f"the run's working directory (an overlay mount) cannot use the path {path!r}: "
                    "it holds ',', ':' or '\\', which the kernel reads as mount options",
                    hint="choose a runs-dir (and a project folder) without those characters",
                )
        return f"lowerdir={self.lower},upperdir={self.upper},workdir={self.scratch}"


OVERLAY_UNSAFE = ",:\\\n"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one run's container; a pure value."""

    image: str
    command: Sequence[str]
    environment: Mapping[str, str]
    mounts: Sequence[Mount | OverlayMount]
    working_dir: str
    user: str
    labels: Mapping[str, str]
    gpus: str | None = None
    resources: Resources = field(default_factory=Resources)
    name: str | None = None
    network: str = "none"
    # None: the image's own; a tool of reprise's (a listing, an archive) passes NO_ENTRYPOINT,
    # so that a base's entrypoint (CUDA images print a banner) cannot get in its way.
    entrypoint: Sequence[str] | None = None


NO_ENTRYPOINT = ("",)  # what `docker run --entrypoint ""` sends: the image's is not run


# Every run container: no network, no privilege escalation, no capabilities, bounded PIDs.
SECURITY = {"network": "none", "no_new_privileges": True, "cap_drop": ["ALL"]}


def _mount(m: Mount | OverlayMount) -> dict[str, Any]:
    if isinstance(m, Mount):
        return {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
    options = {"type": "overlay", "device": "overlay", "o": m.options()}
    return {
        "Type": "volume",
        "Target": m.target,
        "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": options}},
    }


def create_config(spec: ContainerSpec) -> dict[str, Any]:
    """The JSON body of POST /containers/create for a run's container."""
    res = spec.resources
    host: dict[str, Any] = {
        "NetworkMode": spec.network,
        "Mounts": [_mount(m) for m in spec.mounts],
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "PidsLimit": res.pids_limit,
    }
    if spec.gpus:
        host["DeviceRequests"] = [
            {
                "Driver": "",
                "Count": -1 if spec.gpus == "all" else int(spec.gpus),
                "DeviceIDs": None,
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ]
    if res.memory:
        host["Memory"] = parse_bytes(res.memory)
    if res.shm_size:
        host["ShmSize"] = parse_bytes(res.shm_size)
    if res.cpus:
        host["NanoCpus"] = int(res.cpus * 1e9)
    out: dict[str, Any] = {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Env": [f"{k}={v}" for k, v in spec.environment.items()],
        "WorkingDir": spec.working_dir,
        "User": spec.user,
        "Labels": dict(spec.labels),
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "HostConfig": host,
    }
    if spec.entrypoint is not None:
        out["Entrypoint"] = list(spec.entrypoint)
    return out
