"""Packing the environment the build stage made into the final image's layers, and loading
that image into the engine (see ``core.layers`` for what goes where and why).

The build stage's files are copied out of a created (never started) container, unpacked into
a scratch folder, and packed layer by layer in sorted order with deterministic headers; each
layer's sha256 (its diff id) is computed as it is written. The image is then loaded as a
docker-archive holding the config and reprise's layers only: the engine has the base's.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reprise.core import keys
from reprise.core.errors import EngineError
from reprise.core.layers import (
    ENVIRONMENT,
    PYTHON,
    REPRISE,
    Layer,
    archive_manifest,
    dist_name,
    image_config,
    image_id,
    layer_of,
    owners,
    passwd_lines,
    tar_header,
)
from reprise.core.progress import Say
from reprise.edges.container_config import ContainerSpec
from reprise.edges.docker import Engine
from reprise.edges.untar import unpack

_BLOCK = 512
_CHUNK = 1 << 20


class _LayerWriter:
    """One layer's tar, written to a file, hashed as it goes; parent folders added once."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        self.fh: IO[bytes] = path.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.dirs: set[str] = set()
        self.packages: dict[str, str] = {}

    def _put(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.size += len(data)

    def folder(self, name: str, mode: int = 0o755) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self.dirs:
            self.folder(parent)
        if name not in self.dirs:
            self.dirs.add(name)
            self._put(tar_header(name + "/", kind=tarfile.DIRTYPE, mode=mode))

    def file(self, name: str, source: Path | bytes, mode: int) -> None:
        parent = posixpath.dirname(name)
        if parent:
            self.folder(parent)
        if isinstance(source, bytes):
            self._put(tar_header(name, size=len(source), mode=mode))
            self._put(source)
            self._put(b"\0" * (-len(source) % _BLOCK))
            return
        size = source.stat().st_size
        self._put(tar_header(name, size=size, mode=mode))
        with source.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                self._put(chunk)
        self._put(b"\0" * (-size % _BLOCK))

    def link(self, name: str, target: str) -> None:
        parent = posixpath.dirname(name)
        if parent:
            self.folder(parent)
        self._put(tar_header(name, kind=tarfile.SYMTYPE, mode=0o777, link=target))

    def close(self) -> Layer:
        self._put(b"\0" * (2 * _BLOCK))
        self.fh.close()
        return Layer(self.name, "sha256:" + self.digest.hexdigest(), self.size, self.packages)


@dataclass
class Assembly:
    """What the final image is made of, besides the base and the build stage's venv."""

    tag: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    heavy: set[str]  # the heavy packages' names
    heavy_order: Sequence[str]  # their layers' names, in image order
    runtime: Mapping[str, bytes]  # path in the image -> bytes (runtime, project links)
    scripts: Mapping[str, bytes] = field(default_factory=dict)  # venv bin/ -> bytes
    managed_python: bool = False


def _copy_out(
    engine: Engine, image: str, folders: Sequence[str], files: Sequence[str], dest: Path
) -> None:
    """Copy ``folders`` and (small) ``files`` out of ``image`` into ``dest`` (same paths)."""
    container = engine.create(
        ContainerSpec(
            image=image,
            command=["true"],
            environment={},
            mounts=[],
            working_dir="/",
            user="",
            labels={},
        )
    )
    try:
        for path in folders:
            stream = engine.get_archive(container, path)
            unpack(stream, dest / path.lstrip("/"), strip=posixpath.basename(path))
        for path in files:
            target = dest / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_one_file(engine.get_archive(container, path), path))
    finally:
        engine.remove_container(container)


def _one_file(stream: Iterator[bytes], path: str, limit: int = 4 << 20) -> bytes:
    from reprise.edges.streams import ChunkReader

    reader: IO[bytes] = ChunkReader(stream)  # type: ignore[assignment]
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for info in tar:
            if info.isfile() and info.size <= limit:
                source = tar.extractfile(info)
                if source is not None:
                    return bytes(source.read())
    raise EngineError(f"{path} is not a regular file of at most {limit} bytes in the build stage")


def _records(venv: Path) -> dict[str, str]:
    out = {}
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        rel = record.parent.relative_to(venv).as_posix()
        out[rel] = record.read_text(encoding="utf-8", errors="replace")
    return out


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``root`` (relative path, path), folders before what they hold,
    in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        if rel != ".":
            yield rel, here
        for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
            yield (name if rel == "." else f"{rel}/{name}"), here / name


def pack_layers(scratch: Path, plan: Assembly, out: Path, say: Say) -> list[Layer]:
    """The layers, written into ``out`` as ``<n>.tar`` in image order."""
    venv_rel = keys.CONTAINER_VENV.lstrip("/")
    venv = scratch / venv_rel
    records = _records(venv)
    site = next(iter(sorted({posixpath.dirname(r) for r in records})), "lib/python3/site-packages")
    owner = owners(records, site)
    names = (
        ([PYTHON] if plan.managed_python else []) + list(plan.heavy_order) + [ENVIRONMENT, REPRISE]
    )
    writers = {n: _LayerWriter(n, out / f"{i}.tar") for i, n in enumerate(names)}
    for dist_info, text in records.items():
        package, version = dist_name(dist_info)
        where = layer_of(f"{dist_info}/RECORD", owner, plan.heavy)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        writers[where].packages[owner.get(f"{dist_info}/RECORD", package)] = f"{version} {digest}"
    if plan.managed_python:
        _add_tree(writers[PYTHON], scratch, "opt/python", lambda _: PYTHON, writers)
    _add_tree(
        writers[ENVIRONMENT],
        scratch,
        venv_rel,
        lambda rel: layer_of(rel, owner, plan.heavy),
        writers,
    )
    reprise = writers[REPRISE]
    for name, data in sorted({**plan.runtime, **plan.scripts}.items()):
        reprise.file(name.lstrip("/"), data, 0o755 if "/bin/" in name else 0o644)
    passwd, group = passwd_lines(
        (scratch / "etc/passwd").read_text(),
        (scratch / "etc/group").read_text(),
        keys.CONTAINER_UID,
        keys.CONTAINER_GID,
    )
    reprise.file("etc/group", group.encode(), 0o644)
    reprise.file("etc/passwd", passwd.encode(), 0o644)
    reprise.folder("home/reprise", mode=0o1777)
    for folder in (
        keys.CONTAINER_CODE,
        keys.CONTAINER_RUN,
        keys.CONTAINER_WORK,
        keys.CONTAINER_DATA,
    ):
        reprise.folder(folder.lstrip("/"))
    layers = [writers[n].close() for n in names]
    for layer in layers:
        say(f"layer {layer.name}: {layer.size / (1 << 20):.1f} MiB ({layer.diff_id[:19]})")
    return layers


def _add_tree(
    default: _LayerWriter, scratch: Path, top: str, layer: Any, writers: Mapping[str, _LayerWriter]
) -> None:
    default.folder(top)
    for rel, path in _walk(scratch / top):
        name = f"{top}/{rel}"
        writer = writers[layer(rel)]
        if path.is_symlink():
            writer.link(name, str(path.readlink()))
        elif path.is_dir():
            default.folder(name)  # every folder in the default layer, some also where files go
        elif path.is_file():
            writer.file(name, path, 0o755 if os.access(path, os.X_OK) else 0o644)


def _archive(
    layers_dir: Path, layers: Sequence[Layer], config: bytes, manifest: bytes
) -> Iterator[bytes]:
    def member(name: str, size: int) -> bytes:
        return tar_header(name, size=size)

    config_name = image_id(config).split(":")[1] + ".json"
    yield member(config_name, len(config)) + config + b"\0" * (-len(config) % _BLOCK)
    for index, layer in enumerate(layers):
        path = layers_dir / f"{index}.tar"
        yield member(f"{index}.tar", layer.size)
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
        yield b"\0" * (-layer.size % _BLOCK)
    yield member("manifest.json", len(manifest)) + manifest + b"\0" * (-len(manifest) % _BLOCK)
    yield b"\0" * (2 * _BLOCK)


def assemble(
    engine: Engine, build_image: str, base: str, plan: Assembly, say: Say
) -> tuple[str, list[Layer]]:
    """Pack the build stage's environment into layers, load the image as ``plan.tag``;
    returns its id (the hash of its config) and its layers."""
    base_attrs = engine.image_attrs(base)
    if base_attrs is None:
        raise EngineError(f"the base image {base} is not in the engine")
    folders = [keys.CONTAINER_VENV] + (["/opt/python"] if plan.managed_python else [])
    with tempfile.TemporaryDirectory(prefix="reprise-layers-") as tmp:
        scratch, out = Path(tmp) / "fs", Path(tmp) / "layers"
        out.mkdir()
        say("packing the environment into layers")
        _copy_out(engine, build_image, folders, ["/etc/passwd", "/etc/group"], scratch)
        layers = pack_layers(scratch, plan, out, say)
        base_ids = list((base_attrs.get("RootFS") or {}).get("Layers") or [])
        config = image_config(
            base_attrs,
            base_ids,
            layers,
            env=plan.env,
            labels=plan.labels,
            user=f"{keys.CONTAINER_UID}:{keys.CONTAINER_GID}",
            workdir=keys.CONTAINER_CODE,
        )
        files = [f"base/{i}.tar" for i in range(len(base_ids))] + [
            f"{i}.tar" for i in range(len(layers))
        ]
        manifest = archive_manifest(image_id(config).split(":")[1] + ".json", plan.tag, files)
        engine.load(_archive(out, layers, config, manifest))
    wanted = image_id(config)
    attrs = engine.image_attrs(plan.tag)
    if attrs is None or attrs.get("Id") != wanted:
        raise EngineError(f"the engine loaded {plan.tag}, but not as {wanted}")
    return wanted, layers
