"""The one narrow edge to the Docker engine.

Domain code receives an :class:`Engine` and never talks to docker-py itself. docker is imported
lazily so that ``reprise --help`` and the unit tests need no daemon and pay no import cost.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from reprise.dockerapi import APIError, UnixAPI, create_config, socket_path
from reprise.errors import BuildError, EngineError, ImageUnavailableError

if TYPE_CHECKING:
    import docker

ProgressFn = Callable[[str], None]

ENGINE_HINT = "start one with 'make engine' (as root), or point DOCKER_HOST at a running engine"
_STEP_RE = re.compile(r"^Step \d+/\d+ : (.*)$")
_NOISE_RE = re.compile(r"^( ---> |Removing intermediate container|Successfully built)")


def _quiet(_: str) -> None:
    return None


def _report(line: Mapping[str, Any], progress: ProgressFn) -> None:
    """One layer's status from a pull or push stream (byte-level progress is left out)."""
    status = line.get("status")
    if status and line.get("id") and "progress" not in line:
        progress(f"{line['id']}: {status}")


def _guarded(stream: Iterable[bytes], doing: str) -> Iterator[bytes]:
    with _engine_errors(doing):
        yield from stream


@contextlib.contextmanager
def _fast_errors(doing: str) -> Iterator[None]:
    """The socket client's failures as EngineError: an API error with the engine's message,
    anything on the wire as lost contact."""
    try:
        yield
    except EngineError:
        raise
    except APIError as exc:
        raise EngineError(f"the engine refused {doing}: {exc.message}") from exc
    except (OSError, ValueError) as exc:
        raise EngineError(f"lost contact with the engine while {doing}: {exc}") from exc


def _fast_guarded(stream: Iterator[bytes], doing: str) -> Iterator[bytes]:
    with _fast_errors(doing):
        yield from stream


class ContainerGoneError(EngineError):
    """The container a run was using no longer exists in the engine."""


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
class Mount:
    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one run's container; a pure value."""

    image: str
    command: Sequence[str]
    environment: Mapping[str, str]
    mounts: Sequence[Mount]
    working_dir: str
    user: str
    labels: Mapping[str, str]
    gpus: str | None = None
    memory: str | None = None
    shm_size: str | None = None
    cpus: float | None = None
    name: str | None = None


@dataclass
class ContainerExit:
    status_code: int
    oom_killed: bool = False
    error: str | None = None


def parse_image_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split ``repo[:tag][@sha256:...]`` into (repo, tag, digest)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    return ref, tag, digest


class Engine:
    """A connected Docker engine."""

    def __init__(
        self,
        client: docker.DockerClient | None,
        *,
        version: str | None = None,
        fast: UnixAPI | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._sdk = client
        self._version = version
        self._fast = fast  # the hot path over the local socket, without the SDK
        self._environ = dict(environ) if environ is not None else None

    @property
    def _client(self) -> docker.DockerClient:
        """The Docker SDK client, made on first use (builds, pushes, pulls, save, load...)."""
        if self._sdk is None:
            import docker

            with _engine_errors("connecting to the engine"):
                self._sdk = docker.from_env(environment=self._environ)
        return self._sdk

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Engine:
        env = dict(os.environ if environ is None else environ)
        path = socket_path(env)
        if path is not None and os.path.exists(path):  # noqa: PTH110 - before any import
            fast = UnixAPI(path)
            try:
                version = str(fast.version().get("Version", "unknown"))
            except (OSError, APIError, ValueError) as exc:
                raise EngineError(
                    f"no Docker engine answers at {path} ({exc})", hint=ENGINE_HINT
                ) from exc
            return cls(None, version=version, fast=fast, environ=env)
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
        if self._fast is not None:
            with _fast_errors(f"inspecting image {ref}"):
                try:
                    return self._fast.inspect_image(ref)
                except APIError as exc:
                    if exc.status == 404:
                        return None
                    raise
        import docker.errors

        try:
            return dict(self._client.api.inspect_image(ref))  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
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

    def pull(self, ref: str, progress: ProgressFn = _quiet) -> dict[str, Any]:
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

    def push(self, repo: str, tag: str, progress: ProgressFn = _quiet) -> str:
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
        progress: ProgressFn = _quiet,
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
        entrypoint: str = "",
        mounts: Sequence[Mount] = (),
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Run a short command with no network and return its stdout; the container is removed."""
        import docker.errors
        from docker.types import Mount as DockerMount

        try:
            out = self._client.containers.run(
                image,
                list(command),
                entrypoint=entrypoint or None,
                mounts=[
                    DockerMount(
                        target=m.target, source=m.source, type="bind", read_only=m.read_only
                    )
                    for m in mounts
                ],
                environment=dict(environment or {}),
                network_mode="none",
                remove=True,
                stdout=True,
                stderr=False,
            )
        except docker.errors.ContainerError as exc:
            raw = exc.stderr or b""
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            stderr = text.strip()[-2000:]
            raise EngineError(
                f"{' '.join(command)[:200]} failed in {image}: exit {exc.exit_status}"
                + (f"\n{stderr}" if stderr else "")
            ) from exc
        except docker.errors.APIError as exc:
            raise EngineError(f"could not run {image}: {exc.explanation or exc}") from exc
        return bytes(out).decode("utf-8", "replace")

    def create(self, spec: ContainerSpec) -> str:
        """Create the run's container from one request body, whichever client sends it."""
        config = create_config(
            image=spec.image,
            command=spec.command,
            environment=spec.environment,
            mounts=[(m.source, m.target, m.read_only) for m in spec.mounts],
            working_dir=spec.working_dir,
            user=spec.user,
            labels=spec.labels,
            gpus=spec.gpus,
            memory=spec.memory,
            shm_size=spec.shm_size,
            cpus=spec.cpus,
        )
        if self._fast is not None:
            with _fast_errors("creating the container"):
                return self._fast.create_container(config, spec.name)
        import docker.errors

        try:
            created = self._client.api.create_container_from_config(config, spec.name)  # type: ignore[no-untyped-call]
        except docker.errors.APIError as exc:
            raise EngineError(f"could not create the container: {exc.explanation or exc}") from exc
        return str(created["Id"])

    def start(self, container_id: str) -> None:
        if self._fast is not None:
            with _fast_errors(f"starting container {container_id[:12]}"):
                self._fast.start(container_id)
            return
        self._client.api.start(container_id)

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[bytes]:
        """The container's combined output from its start (followed until it exits)."""
        with _engine_errors(f"reading the output of container {container_id[:12]}"):
            stream = self._client.api.logs(
                container_id, stream=True, follow=follow, stdout=True, stderr=True
            )
            yield from stream

    def attach(self, container_id: str) -> Iterator[bytes]:
        """The container's output (from its very start) as it comes, until it exits.

        Opened before the container starts, as `docker run` does, so that no output is missed
        and no second request is needed once it runs.
        """
        doing = f"attaching to container {container_id[:12]}"
        if self._fast is not None:
            with _fast_errors(doing):
                frames = self._fast.attach(container_id)
            return _fast_guarded(frames, doing)
        with _engine_errors(doing):
            stream = self._client.api.attach(
                container_id, stdout=True, stderr=True, stream=True, logs=True
            )
        return _guarded(stream, doing)

    def _inspect_container(self, container_id: str) -> dict[str, Any] | None:
        if self._fast is not None:
            with _fast_errors(f"inspecting container {container_id[:12]}"):
                try:
                    return self._fast.inspect_container(container_id)
                except APIError as exc:
                    if exc.status == 404:
                        return None
                    raise
        import docker.errors

        with _engine_errors(f"inspecting container {container_id[:12]}"):
            try:
                return dict(self._client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

    def container_state(self, container_id: str) -> dict[str, Any] | None:
        """The container's State (Status, ExitCode, OOMKilled, ...), or None if it is gone."""
        attrs = self._inspect_container(container_id)
        if attrs is None:
            return None
        state: dict[str, Any] = dict(attrs.get("State") or {})
        state["Env"] = list((attrs.get("Config") or {}).get("Env") or [])
        state["Labels"] = dict((attrs.get("Config") or {}).get("Labels") or {})
        state["Memory"] = int((attrs.get("HostConfig") or {}).get("Memory") or 0)
        return state

    def _wait(self, container_id: str) -> dict[str, Any]:
        gone = ContainerGoneError(f"container {container_id[:12]} no longer exists")
        if self._fast is not None:
            with _fast_errors(f"waiting for container {container_id[:12]}"):
                try:
                    return self._fast.wait(container_id)
                except APIError as exc:
                    if exc.status == 404:
                        raise gone from exc
                    raise
        import docker.errors

        with _engine_errors(f"waiting for container {container_id[:12]}"):
            try:
                return dict(self._client.api.wait(container_id))
            except docker.errors.NotFound as exc:
                raise gone from exc

    def wait(self, container_id: str) -> ContainerExit:
        """Block until the container exits. A clean exit needs no inspection; any other is
        inspected, for the OOM-killer's mark and the engine's error."""
        result = self._wait(container_id)
        code = int(result.get("StatusCode", -1))
        state: dict[str, Any] = {}
        if code != 0 or result.get("Error"):
            state = self.container_state(container_id) or {}
        error = (result.get("Error") or {}).get("Message") or state.get("Error") or None
        return ContainerExit(
            status_code=code,
            oom_killed=bool(state.get("OOMKilled", False)),
            error=error,
        )

    def stop(self, container_id: str, timeout: int = 10) -> None:
        import docker.errors

        with _engine_errors(f"stopping container {container_id[:12]}"):
            try:
                self._client.api.stop(container_id, timeout=timeout)
            except docker.errors.NotFound:
                return

    def remove_container(self, container_id: str) -> None:
        if self._fast is not None:
            with _fast_errors(f"removing container {container_id[:12]}"):
                try:
                    self._fast.remove_container(container_id)
                except APIError as exc:
                    if exc.status != 404:
                        raise
            return
        import docker.errors

        with _engine_errors(f"removing container {container_id[:12]}"):
            try:
                self._client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                return

    def containers_with_label(self, label: str) -> list[str]:
        found = self._client.api.containers(all=True, filters={"label": label})
        return [str(c["Id"]) for c in found]
