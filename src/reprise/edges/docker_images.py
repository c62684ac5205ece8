"""Images on a Docker engine: inspect, pull and push by digest, tag, remove, build, save, load.
A part of :class:`~reprise.edges.docker.Engine` (the Docker SDK, imported lazily)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from reprise.core.errors import BuildError, EngineError, ImageUnavailableError
from reprise.core.names import parse_image_ref
from reprise.core.progress import Say, quiet
from reprise.edges.docker_calls import engine_errors, report

if TYPE_CHECKING:
    import docker

_STEP_RE = re.compile(r"^Step \d+/\d+ : (.*)$")


class ImageOps:
    """The image half of the engine edge."""

    _client: docker.DockerClient

    def image_attrs(self, ref: str) -> dict[str, Any] | None:
        import docker.errors

        with engine_errors(f"inspecting image {ref}"):
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
                report(line, progress)
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
                report(line, progress)
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
        log: IO[str] | None = None,
        no_cache: bool = False,
    ) -> str:
        """Build from a tar ``context`` (Dockerfile at its root) on the host network
        (``no_cache``: every step anew, the engine's build cache unused).

        Progress is one line per step, with the time the previous one took; the whole log,
        as whole lines, goes to ``log``. Returns the image id. On failure raises
        :class:`BuildError` with the failing step and the tail of the log.
        """
        import time

        import docker.errors

        lines: list[str] = []
        partial = ""
        step: str | None = None
        cached = False
        started = time.monotonic()
        image_id: str | None = None

        def step_done() -> None:
            if step is not None and not cached:
                progress(f"  done in {time.monotonic() - started:.1f} s")

        def line_done(line: str) -> None:
            nonlocal step, started, cached
            lines.append(line)
            del lines[:-200]
            if log is not None:
                log.write(line + "\n")
            match = _STEP_RE.match(line)
            if match:
                step_done()
                step, started, cached = match.group(1), time.monotonic(), False
                progress(line)
            elif line.startswith(" ---> Using cache"):
                cached = True
                progress("  (cached)")

        try:
            stream = self._client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                nocache=no_cache,
                network_mode="host",
                labels=dict(labels) if labels else None,
                decode=True,
            )
            for chunk in stream:
                if "stream" in chunk:
                    *done, partial = (partial + str(chunk["stream"])).split("\n")
                    for line in done:
                        line_done(line.rstrip("\r"))
                elif "error" in chunk:
                    if partial:
                        line_done(partial)
                    line_done(str(chunk["error"]))
                    raise BuildError(
                        "docker build failed",
                        step=step,
                        log_tail="\n".join(lines[-40:]),
                        hint="fix the failing step, then run 'reprise build' again"
                        + (f" (the whole log: {log.name})" if log is not None else ""),
                    )
                elif isinstance(chunk.get("aux"), dict) and "ID" in chunk["aux"]:
                    image_id = str(chunk["aux"]["ID"])
            if partial:
                line_done(partial)
            step_done()
        except docker.errors.APIError as exc:
            raise BuildError(
                f"docker build failed: {exc.explanation or exc}",
                step=step,
                log_tail="\n".join(lines[-40:]),
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

        loaded: list[str] = []
        with engine_errors("loading an image"):
            return self._load(data, loaded)

    def _load(self, data: Iterable[bytes], loaded: list[str]) -> list[str]:
        import docker.errors

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
