"""The edge to a Docker engine, through the Docker SDK (the one client).

Commands receive an :class:`Engine` and never talk to docker-py themselves. ``docker`` is
imported lazily, so that ``reprise --help``, ``ls`` and ``show`` and the unit tests need no
daemon and pay no import cost.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprise.core.errors import EngineError, JobGoneError
from reprise.edges.container_config import NO_ENTRYPOINT, ContainerSpec, Mount, create_config
from reprise.edges.docker_calls import engine_errors, guarded
from reprise.edges.docker_images import ImageOps

if TYPE_CHECKING:
    import docker

CAPTURE_LIMIT = 16 << 20
ENGINE_HINT = "start one with 'make engine' (as root), or point DOCKER_HOST at a running engine"
HOST_HINT = (
    "check the host: `ssh HOST docker version` must work (keys, agent and ~/.ssh/config are "
    "yours: reprise runs your ssh), or DOCKER_HOST / the docker context must point at a running engine"
)


@dataclass(frozen=True)
class ContainerExit:
    status_code: int
    oom_killed: bool = False
    error: str | None = None


class Engine(ImageOps):
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient, *, version: str | None = None) -> None:
        self._client = client
        self._version = version

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Engine:
        """The engine DOCKER_HOST (and the rest of the docker environment) points at."""
        import docker
        import docker.errors

        host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
        if host.startswith("ssh://"):  # reprise's own SSH transport, not the SDK's paramiko
            return cls.connect(host)
        try:
            client = docker.from_env(environment=dict(environ) if environ is not None else None)
            version = str(client.version().get("Version", "unknown"))  # also proves it answers
        except docker.errors.DockerException as exc:
            raise EngineError(f"no Docker engine answers ({exc})", hint=ENGINE_HINT) from exc
        return cls(client, version=version)

    @classmethod
    def connect(cls, host: str, *, tls: Any = None) -> Engine:
        """The engine at ``host``: ``ssh://[user@]host[:port]`` through the user's own ``ssh``
        (its config, keys and agent), ``tcp://`` (with ``tls``), or ``unix://``."""
        import docker
        import docker.errors

        try:
            if host.startswith("ssh://"):
                from reprise.edges.sshdial import SshDial

                dial = SshDial(host)  # one SSH connection for every request
                client = docker.DockerClient(base_url=dial.url, timeout=120)
                try:
                    version = str(client.version().get("Version", "unknown"))
                except BaseException:
                    dial.close()
                    raise
                return cls(client, version=version)
            elif host.startswith("tcp://") and tls is None and os.environ.get("DOCKER_TLS_VERIFY"):
                client = docker.from_env(environment={**os.environ, "DOCKER_HOST": host})
            else:
                client = docker.DockerClient(base_url=host, tls=tls or False, timeout=120)
            version = str(client.version().get("Version", "unknown"))
        except (docker.errors.DockerException, OSError, ValueError) as exc:
            raise EngineError(
                f"no Docker engine answers at {host} ({exc})", hint=HOST_HINT
            ) from exc
        return cls(client, version=version)

    def put_archive(self, container_id: str, path: str, data: Iterable[bytes]) -> None:
        """Extract a tar stream into the (created, not started) container at ``path``."""
        import docker.errors

        with engine_errors(f"copying into container {container_id[:12]}"):
            try:
                self._client.api.put_archive(container_id, path, data)
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"could not copy into the container: {exc.explanation or exc}"
                ) from exc

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar stream of ``path`` in the container (ended or not)."""
        import docker.errors

        doing = f"copying {path} out of container {container_id[:12]}"
        with engine_errors(doing):
            try:
                stream, _ = self._client.api.get_archive(container_id, path, chunk_size=1 << 20)
            except docker.errors.NotFound as exc:
                raise JobGoneError(
                    f"container {container_id[:12]} (or {path} in it) is gone"
                ) from exc
            except docker.errors.APIError as exc:
                raise EngineError(f"could not copy {path} out: {exc.explanation or exc}") from exc
        return guarded(stream, doing)

    # --- engine ---------------------------------------------------------------------------
    def version(self) -> str:
        if self._version is None:
            with engine_errors("asking the engine's version"):
                self._version = str(self._client.version().get("Version", "unknown"))
        return self._version

    def info(self) -> dict[str, Any]:
        return dict(self._client.info())

    # --- containers -----------------------------------------------------------------------
    def run_capture(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        limit: int = CAPTURE_LIMIT,
    ) -> str:
        """Run a short command (no network, hardened like a run) and return its stdout, at most
        ``limit`` bytes of it (an image may be hostile); the container is removed."""
        spec = ContainerSpec(
            image=image,
            command=list(command),
            environment={},
            mounts=mounts,
            working_dir="/",
            user="",
            labels={},
            entrypoint=NO_ENTRYPOINT,
        )
        container = self.create(spec)
        try:
            self.start(container)
            result = self.wait(container)
            out = self._bounded_logs(container, limit, stdout=True)
            if result.status_code != 0:
                err = self._bounded_logs(container, 64 << 10, stdout=False)[-2000:]
                stderr = err.decode("utf-8", "replace").strip()
                raise EngineError(
                    f"{' '.join(command)[:200]} failed in {image}: exit {result.status_code}"
                    + (f"\n{stderr}" if stderr else "")
                )
        finally:
            self.remove_container(container)
        return out.decode("utf-8", "replace")

    def _bounded_logs(self, container: str, limit: int, *, stdout: bool) -> bytes:
        out = bytearray()
        with engine_errors(f"reading the output of container {container[:12]}"):
            stream = self._client.api.logs(container, stream=True, stdout=stdout, stderr=not stdout)
            for chunk in stream:
                out += chunk[: limit - len(out)]
                if len(out) >= limit:
                    break
        return bytes(out)

    def create(self, spec: ContainerSpec) -> str:
        """Create the run's container (network none, hardened: see :data:`SECURITY`)."""
        import docker.errors

        with engine_errors("creating the container"):
            try:
                created = self._client.api.create_container_from_config(  # type: ignore[no-untyped-call]
                    create_config(spec), spec.name
                )
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"could not create the container: {exc.explanation or exc}"
                ) from exc
        return str(created["Id"])

    def start(self, container_id: str) -> None:
        import docker.errors

        with engine_errors(f"starting container {container_id[:12]}"):
            try:
                self._client.api.start(container_id)
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"could not start container {container_id[:12]}: {exc.explanation or exc}"
                ) from exc

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[bytes]:
        """The container's combined output from its start (followed until it exits)."""
        with engine_errors(f"reading the output of container {container_id[:12]}"):
            stream = self._client.api.logs(
                container_id, stream=True, follow=follow, stdout=True, stderr=True
            )
            yield from stream

    def attach(self, container_id: str) -> Iterator[bytes]:
        """The container's output (from its very start) as it comes, until it exits.

        Opened before the container starts, as `docker run` does, so that no output is missed.
        """
        doing = f"attaching to container {container_id[:12]}"
        with engine_errors(doing):
            stream = self._client.api.attach(
                container_id, stdout=True, stderr=True, stream=True, logs=True
            )
        return guarded(stream, doing)

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        """The engine's whole description of the container, or None if it is gone."""
        import docker.errors

        with engine_errors(f"inspecting container {container_id[:12]}"):
            try:
                return dict(self._client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

    def wait(self, container_id: str) -> ContainerExit:
        """Block until the container exits. A clean exit needs no inspection; any other is
        inspected, for the OOM-killer's mark and the engine's error."""
        import docker.errors

        with engine_errors(f"waiting for container {container_id[:12]}"):
            try:
                result: dict[str, Any] = dict(self._client.api.wait(container_id))
            except docker.errors.NotFound as exc:
                raise JobGoneError(f"container {container_id[:12]} no longer exists") from exc
        code = int(result.get("StatusCode", -1))
        state: dict[str, Any] = {}
        if code != 0 or result.get("Error"):
            state = dict(((self.inspect_container(container_id) or {}).get("State")) or {})
        error = (result.get("Error") or {}).get("Message") or state.get("Error") or None
        return ContainerExit(
            status_code=code, oom_killed=bool(state.get("OOMKilled", False)), error=error
        )

    def stop(self, container_id: str, timeout: int = 10) -> None:
        import docker.errors

        with engine_errors(f"stopping container {container_id[:12]}"):
            try:
                self._client.api.stop(container_id, timeout=timeout)
            except docker.errors.NotFound:
                return

    def remove_container(self, container_id: str) -> None:
        import docker.errors

        with engine_errors(f"removing container {container_id[:12]}"):
            try:
                self._client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return

    def containers_with_label(self, label: str) -> list[str]:
        with engine_errors("listing containers"):
            found = self._client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]
