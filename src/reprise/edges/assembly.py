"""Packing the environment the build stage made into the final image's layers, and loading
that image into the engine (see ``core.layers`` for what goes where and why).

The build stage's files are copied out of a container of it (``edges.stagecopy``), unpacked
into a scratch folder (in memory when small), and packed layer by layer in sorted order with deterministic headers; each
layer's sha256 (its diff id) is computed as it is written. The image is then loaded as a
docker-archive holding the config and reprise's layers only: the engine has the base's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from reprise.core import keys
from reprise.core.display import human_bytes
from reprise.core.errors import EngineError, RecordError
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
    package_of,
    passwd_lines,
    tar_header,
)
from reprise.core.progress import Say
from reprise.core.workspace import normalize
from reprise.edges.docker import Engine
from reprise.edges.runfiles import read_regular
from reprise.edges.stagecopy import (
    RECORD_LIMIT,
    StageArchiveError,
    copied_bytes,
    copy_out,
    drop_install_stamps,
    heavy_owners,
    scratch_parent,
    venv_listing,
    venv_names,
    whole,
)

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
    # A heavy package's layer depends only on these (base, Python, uv, its pinned line): a
    # layer packed before under the same key is reused, not copied and packed again.
    heavy_keys: Mapping[str, str] = field(default_factory=dict)
    cache: Path | None = None


def _records(venv: Path) -> dict[str, str]:
    """Each .dist-info folder's RECORD (relative path -> text); one reached through a link
    or not a regular file (the build stage made these files) is not read."""
    out = {}
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        rel = record.relative_to(venv).as_posix()
        with contextlib.suppress(OSError):
            found = read_regular(venv, rel, RECORD_LIMIT)
            if found is not None and not found[1]:
                out[posixpath.dirname(rel)] = found[0].decode("utf-8", "replace")
    return out


def _walk(root: Path, folders: Collection[str] = ()) -> Iterator[tuple[str, Path, bool]]:
    """Every entry under ``root`` and every one of ``folders`` (relative paths of folders
    that may not have been made here: those that hold only a reused layer's files), as
    (relative path, path, is a folder): a folder, then what it holds but folders, then its
    folders, each in sorted order. A link to a folder is not a folder."""
    children: dict[str, set[str]] = {}
    for folder in folders:
        children.setdefault(posixpath.dirname(folder), set()).add(posixpath.basename(folder))

    stack = [""]  # depth first, without recursion: the listing may nest any depth
    while stack:
        rel = stack.pop()
        here = root / rel if rel else root
        subs, names = set(children.get(rel, ())), set()
        try:
            if not here.is_symlink():  # never scanned through a link (os.scandir follows one)
                with contextlib.suppress(FileNotFoundError), os.scandir(here) as found:
                    for entry in found:
                        if entry.is_dir(follow_symlinks=False):
                            subs.add(entry.name)
                        else:
                            names.add(entry.name)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            raise RecordError(
                f"the build stage's environment nests deeper than a path here can name "
                f"({len(rel.split('/'))} levels)"
            ) from None
        if rel:
            yield rel, here, True
        for name in sorted(names):
            yield posixpath.join(rel, name), here / name, False
        # what is here decides (a link is no folder); the first in order is popped first
        stack.extend(posixpath.join(rel, name) for name in sorted(subs - names, reverse=True))


def _packages(writer: _LayerWriter, root: Path) -> None:
    """The packages a tree holds (name -> "version sha256-of-RECORD[:16]"), into its layer."""
    for dist_info, text in _records(root).items():
        package, version = dist_name(dist_info)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        writer.packages[normalize(package)] = f"{version} {digest}"


def pack_layers(
    scratch: Path,
    plan: Assembly,
    out: Path,
    reuse: Mapping[str, Layer],
    owner: Mapping[str, str],
    say: Say,
    folders: Collection[str] = (),
) -> list[Layer]:
    """The layers in image order; those in ``reuse`` (by name) are taken as they are (the
    engine has them, and their files were not copied out), the others written into ``out``
    as ``<n>.tar``. ``owner`` maps a venv file to its package (by the RECORDs);
    ``folders`` are the venv's folders, made or not in ``scratch``."""
    venv_rel = keys.CONTAINER_VENV.lstrip("/")
    names = (
        ([PYTHON] if plan.managed_python else []) + list(plan.heavy_order) + [ENVIRONMENT, REPRISE]
    )
    writers = {n: _LayerWriter(n, out / f"{i}.tar") for i, n in enumerate(names) if n not in reuse}
    for dist_info, text in _records(scratch / venv_rel).items():
        package, version = dist_name(dist_info)
        where = layer_of(f"{dist_info}/RECORD", owner, plan.heavy)
        if where in writers:
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            writers[where].packages[normalize(package)] = f"{version} {digest}"
    if plan.managed_python:
        _add_tree(writers[PYTHON], scratch / "opt/python", "opt/python", lambda _: PYTHON, writers)
    _add_tree(
        writers[ENVIRONMENT],
        scratch / venv_rel,
        venv_rel,
        lambda rel: layer_of(rel, owner, plan.heavy),
        writers,
        folders,
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
    layers = [reuse[n] if n in reuse else writers[n].close() for n in names]
    for layer in layers:
        how = "reused" if layer.name in reuse else f"{layer.diff_id[:19]}"
        say(f"layer {layer.name}: {human_bytes(layer.size)} ({how})")
    return layers


def _add_tree(
    default: _LayerWriter,
    root: Path,
    top: str,
    layer: Callable[[str], str],
    writers: Mapping[str, _LayerWriter],
    folders: Collection[str] = (),
) -> None:
    """Everything under ``root`` (and ``folders``, see ``_walk``) as ``top/...``: each file
    into ``layer(its path)``'s writer (when it is written at all), every folder into
    ``default``."""
    default.folder(top)
    for rel, path, is_folder in _walk(root, folders):
        name = f"{top}/{rel}"
        writer = writers.get(layer(rel))
        if is_folder:
            default.folder(name)
        elif writer is None:
            continue  # a reused layer's file (not copied out, normally)
        elif path.is_symlink():
            writer.link(name, str(path.readlink()))
        elif path.is_file():
            writer.file(name, path, 0o755 if os.access(path, os.X_OK) else 0o644)


def _archive(
    layers_dir: Path, layers: Sequence[Layer], config: bytes, manifest: bytes, skip: set[str]
) -> Iterator[bytes]:
    def member(name: str, size: int) -> bytes:
        return tar_header(name, size=size)

    config_name = image_id(config).split(":")[1] + ".json"
    yield member(config_name, len(config)) + config + b"\0" * (-len(config) % _BLOCK)
    for index, layer in enumerate(layers):
        if layer.name in skip:
            continue  # the engine has it (a reused layer): named in the manifest only
        path = layers_dir / f"{index}.tar"
        yield member(f"{index}.tar", layer.size)
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
        yield b"\0" * (-layer.size % _BLOCK)
    yield member("manifest.json", len(manifest)) + manifest + b"\0" * (-len(manifest) % _BLOCK)
    yield b"\0" * (2 * _BLOCK)


def _cached(plan: Assembly, name: str) -> Layer | None:
    key = plan.heavy_keys.get(name)
    if plan.cache is None or key is None:
        return None
    try:
        found = json.loads((plan.cache / f"{key}.json").read_text())
        return Layer(found["name"], found["diff_id"], int(found["size"]), found["packages"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember(plan: Assembly, layer: Layer) -> None:
    key = plan.heavy_keys.get(layer.name.removeprefix("package "))
    if plan.cache is None or key is None:
        return
    with contextlib.suppress(OSError):
        plan.cache.mkdir(parents=True, exist_ok=True)
        tmp = plan.cache / f".{key}.tmp"
        tmp.write_text(json.dumps(layer.to_record(), sort_keys=True))
        tmp.replace(plan.cache / f"{key}.json")


def assemble(
    engine: Engine, build_image: str, base: str, plan: Assembly, say: Say
) -> tuple[str, list[Layer]]:
    """Pack the build stage's environment into layers and load the image as ``plan.tag``;
    returns its id (the hash of its config) and its layers. A heavy package's layer packed
    before under the same key is reused; should the engine have lost it, everything is
    packed again."""
    reuse: dict[str, Layer] = {}
    for name in plan.heavy_order:
        found = _cached(plan, name.removeprefix("package "))
        if found is not None and found.name == name:
            reuse[name] = found
    try:
        return _assemble(engine, build_image, base, plan, reuse, say)
    except StageArchiveError as exc:
        say(f"warning: {exc.message}: copying all of it out, packing every layer again")
    except EngineError:
        if not reuse:
            raise
        say("the engine lacks a reused layer: packing every layer again")
    return _assemble(engine, build_image, base, plan, {}, say)


def _assemble(
    engine: Engine,
    build_image: str,
    base: str,
    plan: Assembly,
    reuse: Mapping[str, Layer],
    say: Say,
) -> tuple[str, list[Layer]]:
    base_attrs = engine.image_attrs(base)
    if base_attrs is None:
        raise EngineError(f"the base image {base} is not in the engine")
    say("packing the environment into layers")
    listing = venv_listing(engine, build_image) if plan.heavy else []
    owner = heavy_owners(engine, build_image, plan.heavy, listing)
    skip = {n.removeprefix("package ") for n in reuse}
    size = copied_bytes(listing, owner, skip) if listing and not plan.managed_python else None
    in_memory = scratch_parent(size)
    # In memory, what the build stage sends is held to what its listing said, and some.
    limit = 2 * size + (64 << 20) if in_memory and size is not None else None
    with tempfile.TemporaryDirectory(prefix="reprise-layers-", dir=in_memory) as tmp:
        scratch, out = Path(tmp) / "fs", Path(tmp) / "layers"
        out.mkdir()
        venv_rel = keys.CONTAINER_VENV.lstrip("/")
        listed = venv_names(listing, owner, skip) if skip else b""
        copies = [] if listed else [whole(keys.CONTAINER_VENV, scratch)]
        if plan.managed_python:
            copies.append(whole("/opt/python", scratch))
        copy_out(
            engine,
            build_image,
            copies,
            ["/etc/passwd", "/etc/group"],
            scratch,
            listed=listed,
            limit=limit,
            keep_listed=lambda rel: (
                rel.startswith(f"{venv_rel}/")
                and package_of(rel.removeprefix(f"{venv_rel}/"), owner) not in skip
            ),
        )
        drop_install_stamps(scratch / keys.CONTAINER_VENV.lstrip("/"))
        folders = [entry.path for entry in listing if entry.kind == "d"]
        layers = pack_layers(scratch, plan, out, reuse, owner, say, folders)
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
        engine.load(_archive(out, layers, config, manifest, set(reuse)))
    wanted = image_id(config)
    attrs = engine.image_attrs(plan.tag)
    if attrs is None or attrs.get("Id") != wanted:
        raise EngineError(f"the engine loaded {plan.tag}, but not as {wanted}")
    for layer in layers:
        if layer.name.startswith("package ") and layer.name not in reuse:
            _remember(plan, layer)
    return wanted, layers
