"""A minimal Docker Engine API client over a Unix socket, for the calls on a run's hot path.

`import docker` (with requests and urllib3) costs 60-120 ms on a small machine; a warm
`reprise run` is otherwise little more than the engine's own create/start/wait/remove. This
speaks just those calls (plus version and inspect) with the standard library. Builds, pushes,
pulls, save and load stay with the Docker SDK; hosts other than a local socket use the SDK for
everything. The Engine class chooses; domain code never sees which.
"""

from __future__ import annotations

import json
import re
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/var/run/docker.sock"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def socket_path(environ: Mapping[str, str]) -> str | None:
    """The local socket to use, or None when DOCKER_HOST points elsewhere (tcp, ssh, TLS)."""
    host = environ.get("DOCKER_HOST", "")
    if environ.get("DOCKER_TLS_VERIFY") or environ.get("DOCKER_CONTEXT"):
        return None
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://") :]
    return None


def parse_bytes(value: str) -> int:
    """'64m' -> 67108864, as `docker run --memory` reads it."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


class _Response:
    """Status, headers and a reader positioned at the body, from one HTTP/1.1 exchange."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fp = sock.makefile("rb")
        status_line = self.fp.readline(65537).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionError(f"not an HTTP response: {status_line!r}")
        self.status = int(parts[1])
        self.reason = parts[2].strip() if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        while True:
            line = self.fp.readline(65537).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def read(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.fp.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.fp.readline(1024)
                    return b"".join(chunks)
                chunks.append(self.fp.read(size))
                self.fp.readline(1024)
        length = self.headers.get("content-length")
        if length is not None:
            return self.fp.read(int(length))
        if self.status in (204, 304) or 100 <= self.status < 200:
            return b""
        return self.fp.read()

    def close(self) -> None:
        self.fp.close()
        self.sock.close()


class UnixAPI:
    """One short-lived connection per call: no pool, no state to go stale. Plain sockets
    (http.client alone costs 20+ ms of imports, ssl and email among them)."""

    def __init__(self, path: str, api_version: str | None = None) -> None:
        self.path = path
        self.api_version = api_version

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        prefix = f"/v{self.api_version}" if self.api_version else ""
        query = f"?{urlencode(params)}" if params else ""
        return f"{prefix}{path}{query}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
    ) -> _Response:
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {self._url(path, params)} HTTP/1.1", "Host: docker"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
        if not headers or "Connection" not in headers:
            lines.append("Connection: close")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
            return _Response(sock)
        except BaseException:
            sock.close()
            raise

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = 60.0,
    ) -> Any:
        response = self._request(method, path, params=params, body=body, timeout=timeout)
        try:
            data = response.read()
        finally:
            response.close()
        if response.status >= 400:
            try:
                message = str(json.loads(data).get("message", ""))
            except (ValueError, AttributeError):
                message = data.decode("utf-8", "replace")
            raise APIError(response.status, message or response.reason)
        return json.loads(data) if data.strip() else None

    # --- the calls --------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        data = self.call("GET", "/version")
        if self.api_version is None:
            self.api_version = str(data.get("ApiVersion") or "1.41")
        return dict(data)

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/images/{quote(ref, safe='')}/json"))

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/containers/{container_id}/json"))

    def create_container(self, config: Mapping[str, Any], name: str | None = None) -> str:
        data = self.call(
            "POST", "/containers/create", params={"name": name} if name else None, body=config
        )
        return str(data["Id"])

    def start(self, container_id: str) -> None:
        self.call("POST", f"/containers/{container_id}/start")

    def wait(self, container_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/containers/{container_id}/wait", timeout=None))

    def remove_container(self, container_id: str) -> None:
        self.call("DELETE", f"/containers/{container_id}", params={"force": "1"})

    def attach(self, container_id: str) -> Iterator[bytes]:
        """Output from the container's start to its exit (stdout and stderr interleaved).

        The request is sent now (before the container starts); the stream is read lazily.
        """
        response = self._request(
            "POST",
            f"/containers/{container_id}/attach",
            params={"stream": 1, "stdout": 1, "stderr": 1, "logs": 1},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            timeout=None,
        )
        if response.status >= 400:
            message = response.read().decode("utf-8", "replace")
            response.close()
            raise APIError(response.status, message)
        return _frames(response)


def _frames(response: _Response) -> Iterator[bytes]:
    """Demultiplex the attach stream: 8-byte headers (stream, size), then the payload."""
    raw = response.fp
    try:
        while True:
            header = raw.read(8)
            if len(header) < 8:
                return
            _, size = struct.unpack(">BxxxL", header)
            if size:
                payload = raw.read(size)
                if not payload:
                    return
                yield payload
    finally:
        response.close()


def create_config(
    *,
    image: str,
    command: Sequence[str],
    environment: Mapping[str, str],
    mounts: Sequence[tuple[str, str, bool]],
    working_dir: str,
    user: str,
    labels: Mapping[str, str],
    gpus: str | None,
    memory: str | None,
    shm_size: str | None,
    cpus: float | None,
) -> dict[str, Any]:
    """The JSON body of POST /containers/create, as the SDK would send it."""
    host: dict[str, Any] = {
        "NetworkMode": "none",
        "Mounts": [
            {"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only}
            for source, target, read_only in mounts
        ],
    }
    if gpus:
        host["DeviceRequests"] = [
            {
                "Driver": "",
                "Count": -1 if gpus == "all" else int(gpus),
                "DeviceIDs": None,
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ]
    if memory:
        host["Memory"] = parse_bytes(memory)
    if shm_size:
        host["ShmSize"] = parse_bytes(shm_size)
    if cpus:
        host["NanoCpus"] = int(cpus * 1e9)
    return {
        "Image": image,
        "Cmd": list(command),
        "Env": [f"{k}={v}" for k, v in environment.items()],
        "WorkingDir": working_dir,
        "User": user,
        "Labels": dict(labels),
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "HostConfig": host,
    }
