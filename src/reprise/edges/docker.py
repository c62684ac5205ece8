"""The edge to a Docker engine, through the Docker SDK (the one client).

Commands receive an :class:`Engine` and never talk to docker-py themselves. ``docker`` is
imported lazily, so that ``reprise --help``, ``ls`` and ``show`` and the unit tests need no
daemon and pay no import cost.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from reprise.core.errors import BuildError, EngineError, ImageUnavailableError, JobGoneError
from reprise.core.names import parse_image_ref
from reprise.core.progress import Say, quiet
from reprise.edges.container_config import ContainerSpec, Mount, create_config

if TYPE_CHECKING:
    import docker

CAPTURE_LIMIT = 16 << 20
ENGINE_HINT = "start one with 'make engine' (as root), or point DOCKER_HOST at a running engine"
_STEP_RE = re.compile(r"^Step \d+/\d+ : (.*)$")
_NOISE_RE = re.compile(r"^( ---> |Removing intermediate container|Successfully built)")


def _report(line: Mapping[str, Any], progress: Say) -> None:
    """One layer's status from a pull or push stream (byte-level progress is left out)."""
    status = line.get("status")
    if status and line.get("id") and "progress" not in line:
        progress(f"{line['id']}: {status}")


def _guarded(stream: Iterable[bytes], doing: str) -> Iterator[bytes]:
    with _engine_errors(doing):
        yield from stream


@contextlib.contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """Lost contact with the engine (restart, socket gone) becomes an EngineError."""
    import docker.errors
    import requests
    import urllib3.exceptions

    try:
        yield
    except EngineError:
        raise
    except docker.errors.NotFound:
        raise
    except (
        docker.errors.DockerException,
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        raise EngineError(f"lost contact with the engine while {doing}: {exc}") from exc


@dataclass(frozen=True)
class ContainerExit:
    status_code: int
    oom_killed: bool = False
    error: str | None = None


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient, *, version: str | None = None) -> None:
        self._client = client
        self._version = version

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Engine:
        """The engine DOCKER_HOST (and the rest of the docker environment) points at."""
        import docker
        import docker.errors

        try:
            client = docker.from_env(environment=dict(environ) if environ is not None else None)
            version = str(client.version().get("Version", "unknown"))  # also proves it answers
        except docker.errors.DockerException as exc:
            raise EngineError(f"no Docker engine answers ({exc})", hint=ENGINE_HINT) from exc
        return cls(client, version=version)

    # --- engine ---------------------------------------------------------------------------
    def version(self) -> str:
        if self._version is None:
            with _engine_errors("asking the engine's version"):
                self._version = str(self._client.version().get("Version", "unknown"))
        return self._version

    def info(self) -> dict[str, Any]:
        return dict(self._client.info())

    # --- images ---------------------------------------------------------------------------
    def image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        with _engine_errors(f"inspecting image {ref}"):
            try:
                return dict(self._client.api.inspect_image(ref))  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                raise EngineError(f"could not inspect image {ref}: {exc.explanation}") from exc

    def registry_digest(self, ref: str) -> str:
        """The manifest digest a registry serves for ``ref`` (a tag or a digest reference)."""
        import docker.errors

        try:
            data = self._client.api.inspect_distribution(ref)  # type: ignore[no-untyped-call]
        except docker.errors.APIError as exc:
            raise ImageUnavailableError(
                f"the registry does not serve {ref}: {exc.explanation or exc}",
                hint="check the image name and that the registry is reachable",
            ) from exc
        return str(data["Descriptor"]["digest"])

    def pull(self, ref: str, progress: Say = quiet) -> dict[str, Any]:
        """Pull ``ref`` and return its image attributes."""
        import docker.errors

        repo, tag, digest = parse_image_ref(ref)
        try:
            for line in self._client.api.pull(
                repo, tag=digest or tag or "latest", stream=True, decode=True
            ):
                if "error" in line:
                    raise ImageUnavailableError(f"pull of {ref} failed: {line['error']}")
                _report(line, progress)
        except docker.errors.APIError as exc:
            raise ImageUnavailableError(
                f"pull of {ref} failed: {exc.explanation or exc}",
                hint="check the registry address, that it is reachable, and your login",
            ) from exc
        attrs = self.image_attrs(ref)
        if attrs is None:
            raise ImageUnavailableError(f"pull of {ref} reported success but the image is absent")
        return attrs

    def push(self, repo: str, tag: str, progress: Say = quiet) -> str:
        """Push ``repo:tag`` and return the manifest digest the registry reported."""
        import docker.errors

        digest: str | None = None
        try:
            for line in self._client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise EngineError(
                        f"push of {repo}:{tag} failed: {line['error']}",
                        hint="check the registry address, that it is reachable, and your login",
                    )
                aux = line.get("aux")
                if isinstance(aux, dict) and "Digest" in aux:
                    digest = str(aux["Digest"])
                _report(line, progress)
        except docker.errors.APIError as exc:
            raise EngineError(
                f"push of {repo}:{tag} failed: {exc.explanation or exc}",
                hint="check the registry address, that it is reachable, and your login",
            ) from exc
        if digest is None:
            raise EngineError(f"push of {repo}:{tag} finished without a digest from the registry")
        return digest

    def images_with_label(self, label: str) -> list[dict[str, Any]]:
        return [dict(i) for i in self._client.api.images(filters={"label": label})]

    def image_ids(self) -> set[str]:
        return {str(i["Id"]) for i in self._client.api.images(all=True)}

    def tag(self, image: str, repo: str, tag: str) -> None:
        self._client.api.tag(image, repo, tag=tag)

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        import docker.errors

        try:
            self._client.api.remove_image(ref, force=force)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            raise EngineError(f"could not remove image {ref}: {exc.explanation or exc}") from exc

    def build(
        self,
        context: IO[bytes],
        tag: str,
        *,
        labels: Mapping[str, str] | None = None,
        progress: Say = quiet,
    ) -> str:
        """Build from a tar ``context`` (Dockerfile at its root) on the host network.

        Returns the image id. On failure raises :class:`BuildError` with the failing step
        and the tail of the log.
        """
        import docker.errors

        log: list[str] = []
        step: str | None = None
        image_id: str | None = None
        try:
            stream = self._client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="host",
                labels=dict(labels) if labels else None,
                decode=True,
            )
            for chunk in stream:
                if "stream" in chunk:
                    for line in str(chunk["stream"]).splitlines():
                        log.append(line)
                        match = _STEP_RE.match(line)
                        if match:
                            step = match.group(1)
                        if line.strip() and not _NOISE_RE.match(line):
                            progress(line)
                elif "error" in chunk:
                    log.append(str(chunk["error"]))
                    raise BuildError(
                        "docker build failed",
                        step=step,
                        log_tail="\n".join(log[-25:]),
                        hint="fix the failing step, then run 'reprise build' again",
                    )
                elif isinstance(chunk.get("aux"), dict) and "ID" in chunk["aux"]:
                    image_id = str(chunk["aux"]["ID"])
        except docker.errors.APIError as exc:
            raise BuildError(
                f"docker build failed: {exc.explanation or exc}",
                step=step,
                log_tail="\n".join(log[-25:]),
            ) from exc
        attrs = self.image_attrs(tag)
        if attrs is None:
            raise BuildError("docker build ended without an image", step=step, log_tail="")
        return str(attrs["Id"]) if image_id is None else image_id

    def save(self, image: str, chunk_size: int = 4 << 20) -> Iterator[bytes]:
        """``docker save`` of one image, streamed (the tar the engine writes)."""
        import docker.errors

        try:
            yield from self._client.api.get_image(image, chunk_size=chunk_size)
        except docker.errors.APIError as exc:
            raise EngineError(f"docker save {image} failed: {exc.explanation or exc}") from exc

    def load(self, data: Iterable[bytes]) -> list[str]:
        """``docker load`` from a stream of tar bytes; returns what the engine says it loaded."""
        import docker.errors

        loaded: list[str] = []
        try:
            for line in self._client.api.load_image(data, quiet=True):  # type: ignore[no-untyped-call]
                if "error" in line:
                    raise EngineError(f"docker load failed: {line['error']}")
                stream = str(line.get("stream", ""))
                for prefix in ("Loaded image ID: ", "Loaded image: "):
                    if stream.startswith(prefix):
                        loaded.append(stream[len(prefix) :].strip())
        except docker.errors.APIError as exc:
            raise EngineError(f"docker load failed: {exc.explanation or exc}") from exc
        return loaded

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
        with _engine_errors(f"reading the output of container {container[:12]}"):
            stream = self._client.api.logs(container, stream=True, stdout=stdout, stderr=not stdout)
            for chunk in stream:
                out += chunk[: limit - len(out)]
                if len(out) >= limit:
                    break
        return bytes(out)

    def create(self, spec: ContainerSpec) -> str:
        """Create the run's container (network none, hardened: see :data:`SECURITY`)."""
        import docker.errors

        with _engine_errors("creating the container"):
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

        with _engine_errors(f"starting container {container_id[:12]}"):
            try:
                self._client.api.start(container_id)
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"could not start container {container_id[:12]}: {exc.explanation or exc}"
                ) from exc

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[bytes]:
        """The container's combined output from its start (followed until it exits)."""
        with _engine_errors(f"reading the output of container {container_id[:12]}"):
            stream = self._client.api.logs(
                container_id, stream=True, follow=follow, stdout=True, stderr=True
            )
            yield from stream

    def attach(self, container_id: str) -> Iterator[bytes]:
        """The container's output (from its very start) as it comes, until it exits.

        Opened before the container starts, as `docker run` does, so that no output is missed.
        """
        doing = f"attaching to container {container_id[:12]}"
        with _engine_errors(doing):
            stream = self._client.api.attach(
                container_id, stdout=True, stderr=True, stream=True, logs=True
            )
        return _guarded(stream, doing)

    def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        """The engine's whole description of the container, or None if it is gone."""
        import docker.errors

        with _engine_errors(f"inspecting container {container_id[:12]}"):
            try:
                return dict(self._client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

    def wait(self, container_id: str) -> ContainerExit:
        """Block until the container exits. A clean exit needs no inspection; any other is
        inspected, for the OOM-killer's mark and the engine's error."""
        import docker.errors

        with _engine_errors(f"waiting for container {container_id[:12]}"):
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

        with _engine_errors(f"stopping container {container_id[:12]}"):
            try:
                self._client.api.stop(container_id, timeout=timeout)
            except docker.errors.NotFound:
                return

    def remove_container(self, container_id: str) -> None:
        import docker.errors

        with _engine_errors(f"removing container {container_id[:12]}"):
            try:
                self._client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return

    def containers_with_label(self, label: str) -> list[str]:
        with _engine_errors("listing containers"):
            found = self._client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]
