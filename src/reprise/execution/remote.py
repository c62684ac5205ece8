"""Runs on a Docker engine on another machine (over SSH, or TCP with TLS): nothing crosses by
bind mount. The code at the commit, the frozen config and the datasets are streamed into the
created container as one tar before it starts; what the job wrote is streamed back into the
local run directory when it ends (and by `reprise fetch` when that failed). The image reaches
the host by digest from a registry both reach, else streamed across and proven by its id."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reprise.core import keys
from reprise.core.errors import EngineError, StorageError
from reprise.core.hostinfo import GPU_QUERY, parse_nvidia_smi_csv
from reprise.core.progress import Say, quiet
from reprise.edges.container_config import ContainerSpec
from reprise.edges.docker import Engine
from reprise.edges.trees import remove_tree
from reprise.edges.untar import unpack
from reprise.execution.backend import JobSpec
from reprise.execution.engine_backend import EngineBackend
from reprise.execution.local import unavailable

_CHUNK = 1 << 20
_BLOCK = 512


class Progress:
    """Bytes and rate of a transfer, said every few seconds and at the end."""

    def __init__(self, what: str, say: Say, every: float = 3.0) -> None:
        self.what, self.say, self.every = what, say, every
        self.start = self.last = time.monotonic()
        self.bytes = 0
        self._lock = threading.Lock()  # several streams may add at once

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            now = time.monotonic()
            due = now - self.last >= self.every
            if due:
                self.last = now
        if due:
            self.report("")

    def report(self, suffix: str = " done") -> None:
        seconds = max(time.monotonic() - self.start, 1e-6)
        mib = self.bytes / (1 << 20)
        self.say(f"{self.what}: {mib:.1f} MiB ({mib / seconds:.1f} MiB/s){suffix}")


def _entry(
    name: str,
    *,
    size: int = 0,
    mode: int = 0o644,
    uid: int = 0,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, link
    info.uid = info.gid = uid
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file(path: Path, name: str, progress: Progress, *, uid: int = 0) -> Iterator[bytes]:
    size = path.stat().st_size
    yield _entry(name, size=size, mode=0o755 if os.access(path, os.X_OK) else 0o644, uid=uid)
    sent = 0
    with path.open("rb") as fh:
        while sent < size and (chunk := fh.read(min(_CHUNK, size - sent))):
            sent += len(chunk)
            progress.add(len(chunk))
            yield chunk
    if sent != size:
        raise EngineError(f"{path} changed while it was being sent")
    yield b"\0" * (-size % _BLOCK)


def _tree(
    root: Path,
    prefix: str,
    progress: Progress,
    *,
    top_uid: int = 0,
    owner: int = 0,
    top: bool = True,
    skip: tuple[str, ...] = (),
) -> Iterator[bytes]:
    """``root`` as tar members under ``prefix``, links as links: owned by ``owner`` (root:
    read-only to the job), its top folder (unless ``top`` is false) by ``top_uid``."""
    if top:
        yield _entry(prefix, mode=0o755, uid=top_uid, kind=tarfile.DIRTYPE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        base = prefix if rel == "." else f"{prefix}/{rel}"
        if rel != ".":
            yield _entry(base, mode=0o755, uid=owner, kind=tarfile.DIRTYPE)
        links = [name for name in dirnames if (here / name).is_symlink()]
        for name in sorted(filenames + links):
            path = here / name
            if (here / name).relative_to(root).as_posix() in skip:
                continue
            if path.is_symlink():
                yield _entry(
                    f"{base}/{name}", uid=owner, kind=tarfile.SYMTYPE, link=str(path.readlink())
                )
            elif path.is_file():
                yield from _file(path, f"{base}/{name}", progress, uid=owner)


def inputs_archive(spec: JobSpec, uid: int, say: Say) -> Iterator[bytes]:
    """Everything the job reads, as one tar rooted at /workspace: the code (read-only), a
    copy of it as the working directory (its top writable), the config, the writable
    folders (the job's), and the datasets (read-only)."""
    progress = Progress("sending the inputs", say)
    yield from _tree(spec.code, "code", progress)
    if spec.work is not None:
        yield from _tree(spec.code, "work", progress, top_uid=uid)
        # What the run's work/ already holds (a resumed run's) goes over the code.
        yield from _tree(spec.run_dir / spec.work, "work", progress, owner=uid, top=False)
    yield _entry("run", mode=0o755, kind=tarfile.DIRTYPE)
    yield from _file(spec.config, "run/config.yaml", progress)
    for sub in spec.writable:
        # Its files already there (a resumed run's), never reprise's console log.
        yield from _tree(
            spec.run_dir / sub,
            f"run/{sub}",
            progress,
            top_uid=uid,
            owner=uid,
            skip=("run.log",) if sub == "logs" else (),
        )
    yield _entry("data", mode=0o755, kind=tarfile.DIRTYPE)
    for data in spec.data:
        if data.is_file:
            yield _entry(f"data/{data.name}", mode=0o755, kind=tarfile.DIRTYPE)
            yield from _file(data.source, f"data/{data.name}/{data.source.name}", progress)
        else:
            yield from _tree(data.source, f"data/{data.name}", progress)
    yield b"\0" * (2 * _BLOCK)
    progress.report()


def _digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _same_file(a: Path, b: Path) -> bool:
    """Whether the fetched entry ``a`` is the code's ``b`` unchanged (neither followed if a
    link; ``a`` was made by the safe unpacker, ``b`` is reprise's own copy of the code)."""
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and a.readlink() == b.readlink()
    if not (a.is_file() and b.is_file()) or a.stat().st_size != b.stat().st_size:
        return False
    return _digest(a) == _digest(b)


def keep_changes(fetched: Path, code: Path, dest: Path) -> None:
    """Move into ``dest`` what the job wrote in its working directory: every entry of
    ``fetched`` (the working directory as it ended) that the code at the commit does not hold
    as it is."""
    for dirpath, dirnames, filenames in os.walk(fetched):
        here = Path(dirpath)
        rel = here.relative_to(fetched)
        links = [name for name in dirnames if (here / name).is_symlink()]
        for name in sorted(filenames + links):
            if _same_file(here / name, code / rel / name):
                continue
            (dest / rel).mkdir(parents=True, exist_ok=True)
            (here / name).rename(dest / rel / name)


class RemoteBackend(EngineBackend):
    """A Docker engine on another machine."""

    def __init__(self, engine: Engine, host: str, local: Callable[[], Engine]) -> None:
        super().__init__(engine)
        self.host = host
        self._local = local

    @property
    def executor(self) -> dict[str, Any]:
        return {"kind": "remote", "host": self.host}

    def describe_host(self, image: str | None = None) -> dict[str, Any]:
        info = self.engine.info()
        return {
            "hostname": info.get("Name"),
            "address": self.host,
            "arch": {"x86_64": "x86_64", "aarch64": "aarch64"}.get(
                str(info.get("Architecture")), info.get("Architecture")
            ),
            "os": f"{info.get('OperatingSystem')} (kernel {info.get('KernelVersion')})",
            "cpu": self._cpu_model(image),
            "cpu_count": info.get("NCPU"),
            "memory_bytes": info.get("MemTotal"),
            "docker_version": self.engine.version(),
            "gpu": self._gpus(image, info),
        }

    def _cpu_model(self, image: str | None) -> str | None:
        if image is None:
            return None
        with contextlib.suppress(EngineError):
            out = self.engine.run_capture(image, ["grep", "-m1", "model name", "/proc/cpuinfo"])
            return out.split(":", 1)[1].strip() if ":" in out else None
        return None

    def _gpus(self, image: str | None, info: Mapping[str, Any]) -> dict[str, Any]:
        if "nvidia" not in (info.get("Runtimes") or {}) or image is None:
            return {"present": False, "gpus": []}
        with contextlib.suppress(EngineError):
            out = self.engine.run_capture(
                image,
                ["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
            )
            return {"present": True, "gpus": parse_nvidia_smi_csv(out)}
        return {"present": False, "gpus": []}

    def ensure_image(self, image_id: str, refs: Sequence[str], say: Say) -> str:
        if self.has_image(image_id):
            return f"on {self.host}"
        pulled = self.pull_any(image_id, refs, say)
        if pulled is not None:
            return pulled
        local = self._local()
        if local.image_attrs(image_id) is None:
            raise unavailable(image_id, getattr(self, "tried", []))
        progress = Progress(f"sending image {image_id[:19]} to {self.host}", say)

        def counted() -> Iterator[bytes]:
            for chunk in local.save(image_id):
                progress.add(len(chunk))
                yield chunk

        self.engine.load(counted())
        progress.report()
        if not self.has_image(image_id):
            raise EngineError(f"{self.host} loaded the image, but not as {image_id}: refused")
        return f"streamed to {self.host}"

    def create(self, spec: JobSpec) -> str:
        base = keys.CONTAINER_WORK if spec.work is not None else keys.CONTAINER_CODE
        container = self.engine.create(
            ContainerSpec(
                image=spec.image,
                command=list(spec.command),
                environment=dict(spec.environment),
                mounts=[],
                working_dir=f"{base}/{spec.workdir}" if spec.workdir else base,
                user=spec.user,
                labels={**spec.labels, **_fetch_labels(spec)},
                gpus=spec.gpus,
                resources=spec.resources,
                network=spec.network,
            )
        )
        uid = (
            int(spec.user.split(":", 1)[0])
            if spec.user.split(":", 1)[0].isdigit()
            else keys.CONTAINER_UID
        )
        try:
            self.engine.put_archive(container, "/workspace", inputs_archive(spec, uid, quiet))
        except BaseException:
            with contextlib.suppress(EngineError):
                self.engine.remove_container(container)
            raise
        return container

    def collect(self, job: str, run_dir: Path, say: Say) -> None:
        """Stream the job's writable folders back; its working directory's changes go to the
        run's work/ folder. Each folder is emptied first, so that a fetch can be repeated."""
        try:
            self._collect(job, run_dir, say)
        except OSError as exc:
            raise StorageError(
                f"the fetched outputs could not be written into {run_dir}: "
                f"{exc.strerror or exc} ({exc.filename or '?'})"
            ) from exc

    def _collect(self, job: str, run_dir: Path, say: Say) -> None:
        attrs = self.engine.inspect_container(job)
        if attrs is None:
            raise EngineError(f"container {job[:12]} no longer exists on {self.host}")
        writable, code = _fetch_plan(attrs)
        progress = Progress(f"fetching the outputs from {self.host}", say)

        def fetch(sub: str) -> None:
            log = sub == keys.RUN_LOG.split("/", 1)[0]
            _clear(run_dir / sub, keep=keys.RUN_LOG.split("/", 1)[1] if log else None)
            keep: Callable[[str, tarfile.TarInfo], bool] = (
                (lambda rel, _: rel != "run.log") if log else (lambda _r, _i: True)
            )
            stream = self.engine.get_archive(job, f"{keys.CONTAINER_RUN}/{sub}")
            unpack(stream, run_dir / sub, strip=sub, keep=keep, progress=progress.add)

        # Each folder is its own stream into its own folder: a few at once, as each request
        # waits on the connection's round trips more than on bytes.
        with ThreadPoolExecutor(max_workers=min(4, len(writable) or 1)) as pool:
            for _ in pool.map(fetch, writable):
                pass
        if code is False:
            say(
                "warning: the code the working directory started from is gone from this "
                "machine (reprise gc?): what the job wrote there is not fetched"
            )
        elif isinstance(code, Path):
            scratch = run_dir / ".work-fetch"
            remove_tree(scratch)
            _clear(run_dir / keys.RUN_WORK_DIR)
            try:
                stream = self.engine.get_archive(job, keys.CONTAINER_WORK)
                unpack(stream, scratch, strip="work", progress=progress.add)
                keep_changes(scratch, code, run_dir / keys.RUN_WORK_DIR)
            finally:
                remove_tree(scratch)
        progress.report()

    def run_tool(self, image: str, command: Sequence[str], inputs: Mapping[str, Path]) -> str:
        raise EngineError(
            f"comparing tensors runs where the run's image is: not yet on remote hosts ({self.host})",
            hint="compare on this machine: reprise diff, with the image here",
        )


def _clear(folder: Path, keep: str | None = None) -> None:
    """Empty a job folder before it is fetched (again): what a partial fetch left goes."""
    if folder.is_symlink():
        raise StorageError(f"{folder} is a link: refused (the run directory was tampered with)")
    folder.mkdir(exist_ok=True)
    for entry in folder.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)
        else:
            entry.unlink()


LABEL_WRITABLE = f"{keys.LABEL_PREFIX}.writable"
LABEL_CODE = f"{keys.LABEL_PREFIX}.code"


def _fetch_labels(spec: JobSpec) -> dict[str, str]:
    """What ``collect`` needs to know later, perhaps in another process: the job's writable
    folders, and (with a working directory) the name of the code it started as."""
    labels = {LABEL_WRITABLE: ",".join(spec.writable)}
    if spec.work is not None:
        labels[LABEL_CODE] = str(spec.code.resolve())
    return labels


def _fetch_plan(attrs: Mapping[str, Any]) -> tuple[list[str], Path | bool | None]:
    """The writable folders to fetch and the local code to compare the working directory
    with (None: no working directory; False: the code is gone), from the job's labels, each
    checked: plain names, the code an absolute folder of a code cache (``.cache/code/``)."""
    from reprise.core import names
    from reprise.core.errors import InvalidNameError

    labels = (attrs.get("Config") or {}).get("Labels") or {}
    try:
        writable = [
            names.relative_path(sub, "writable folder")
            for sub in str(labels.get(LABEL_WRITABLE) or "").split(",")
            if sub
        ]
        if any("/" in sub for sub in writable):
            raise EngineError(f"the job's writable folders are not plain names: {writable}")
    except InvalidNameError as exc:
        raise EngineError(f"the job's labels are not reprise's: {exc.message}") from None
    label = labels.get(LABEL_CODE)
    if label is None:
        return writable, None
    code = Path(str(label))
    if not code.is_absolute() or code.parent.parts[-2:] != (".cache", "code") or ".." in code.parts:
        raise EngineError(f"the job's code label is not reprise's: {label!r}")
    if code.is_symlink() or not code.is_dir() or code.resolve() != code:
        return writable, False
    return writable, code
