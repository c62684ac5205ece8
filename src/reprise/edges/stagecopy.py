"""Copying the build stage's files out of a created (never started) container: the whole
environment, or, when some heavy packages' layers are reused, every folder and only the
subtrees that hold something else (``core.copyout`` plans them), plus the heavy packages'
RECORDs that say which file is whose."""

from __future__ import annotations

import fnmatch
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reprise.core import keys
from reprise.core.copyout import Entry, parse_listing, plan_copy
from reprise.core.errors import EngineError
from reprise.core.layers import dist_name, owners, package_of
from reprise.core.workspace import normalize
from reprise.edges.container_config import ContainerSpec
from reprise.edges.docker import Engine
from reprise.edges.runfiles import read_regular
from reprise.edges.untar import unpack

LISTING_LIMIT = 256 << 20  # find's listing of the environment
RECORD_LIMIT = 64 << 20  # a package's RECORD


def copy_out(
    engine: Engine,
    image: str,
    copies: Sequence[Copy],
    files: Sequence[str],
    dest: Path,
) -> None:
    """Copy out of ``image`` each of ``copies``, and (small) ``files`` into ``dest`` (same
    paths)."""
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

    def one(copy: Copy) -> None:
        stream = engine.get_archive(container, copy.path)
        unpack(stream, copy.folder, strip=copy.strip, keep=copy.keep)

    try:
        # Each request costs the engine a mount of the container's files: a few at once.
        with ThreadPoolExecutor(max_workers=min(4, len(copies) or 1)) as pool:
            for _ in pool.map(one, copies):
                pass
        for path in files:
            target = dest / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_one_file(engine.get_archive(container, path), path))
    finally:
        engine.remove_container(container)


@dataclass(frozen=True)
class Copy:
    """``path`` of the image unpacked into ``folder``: ``strip`` its archive's top entry
    (or "" to keep it); members for which ``keep`` is false left out."""

    path: str
    folder: Path
    strip: str
    keep: Callable[[str, tarfile.TarInfo], bool] = lambda _r, _i: True


def whole(path: str, dest: Path) -> Copy:
    """A folder of the image copied whole to the same path under ``dest``."""
    return Copy(path, dest / path.lstrip("/"), posixpath.basename(path))


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


def venv_listing(engine: Engine, image: str) -> list[Entry]:
    """Every entry of the build stage's environment (one short container)."""
    command = ["find", keys.CONTAINER_VENV, "-mindepth", "1", "-printf", "%y %s %P\\0"]
    try:
        text = engine.run_capture(image, command, limit=LISTING_LIMIT)
        if len(text.encode("utf-8", "surrogateescape")) >= LISTING_LIMIT:
            raise ValueError(f"the listing is longer than {LISTING_LIMIT} bytes")
        return parse_listing(text)
    except ValueError as exc:
        raise EngineError(
            f"could not list {keys.CONTAINER_VENV} in the build stage: {exc}"
        ) from None


def heavy_owners(
    engine: Engine, image: str, heavy: set[str], listing: Sequence[Entry], dest: Path
) -> dict[str, str]:
    """Which venv file belongs to which heavy package, from the heavy packages' RECORDs
    alone (copied out first, so that a reused package's files need not be)."""
    if not heavy:
        return {}
    venv = keys.CONTAINER_VENV
    wanted = [
        e.path
        for e in listing
        if e.kind == "d"
        and fnmatch.fnmatchcase(e.path, "lib/python*/site-packages/*.dist-info")
        and normalize(dist_name(e.path)[0]) in heavy
    ]
    copy_out(engine, image, [whole(f"{venv}/{rel}", dest) for rel in wanted], [], dest)
    records = {}
    for rel in wanted:  # a link in the build stage stays a link here: never read through
        try:
            found = read_regular(dest / venv.lstrip("/") / rel, "RECORD", RECORD_LIMIT)
        except OSError:
            continue
        if found is not None and not found[1]:
            records[rel] = found[0].decode("utf-8", "replace")
    site = next(iter(sorted({posixpath.dirname(r) for r in records})), "")
    return owners(records, site) if site else {}


def venv_copies(
    listing: Sequence[Entry], owner: Mapping[str, str], skip: set[str], dest: Path
) -> list[Copy]:
    """The copies that bring the environment out without the files of the packages in
    ``skip`` (whose layers are reused): every folder made here, the fewest subtrees
    streamed. Without anything to skip: the whole folder, one stream."""
    venv = keys.CONTAINER_VENV
    root = dest / venv.lstrip("/")

    def skipped(rel: str) -> bool:
        return package_of(rel, owner) in skip

    paths = plan_copy(listing, skipped) if skip else [""]
    if paths == [""]:
        return [Copy(venv, root, posixpath.basename(venv), lambda rel, _: not skipped(rel))]
    root.mkdir(parents=True, exist_ok=True)
    for entry in listing:  # find lists a folder before what it holds
        if entry.kind == "d":
            (root / entry.path).mkdir(exist_ok=True)
    out = []
    for rel in paths:
        parent = posixpath.dirname(rel)

        def keep(member: str, _: tarfile.TarInfo, parent: str = parent) -> bool:
            return not skipped(posixpath.join(parent, member))

        out.append(Copy(f"{venv}/{rel}", root / parent, "", keep))
    return out


UV_STAMP = "uv_cache.json"


def drop_install_stamps(venv: Path) -> list[str]:
    """Remove the one file an install writes differently each time: uv's
    ``<dist>.dist-info/uv_cache.json`` (when it installed a wheel from a folder), with its
    line in RECORD, so that the same lock packs to the same bytes. The dist-info folders
    named, in order."""
    dropped = []
    for stamp in sorted(venv.glob(f"lib/python*/site-packages/*.dist-info/{UV_STAMP}")):
        if stamp.is_symlink() or not stamp.is_file():
            continue
        stamp.unlink()
        dropped.append(stamp.parent.name)
        record = stamp.parent / "RECORD"
        if record.is_symlink() or not record.is_file():
            continue
        line = f"{stamp.parent.name}/{UV_STAMP},"
        lines = record.read_bytes().decode("utf-8", "surrogateescape").splitlines(keepends=True)
        kept = "".join(x for x in lines if not x.startswith(line))
        record.write_bytes(kept.encode("utf-8", "surrogateescape"))
    return dropped
