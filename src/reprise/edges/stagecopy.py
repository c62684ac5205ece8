"""Copying the build stage's files out of a container of it: the whole environment (copied
out of the created container as it is), or, when some heavy packages' layers are reused,
every file but theirs (``core.copyout`` names them; the container's own tar archives them
in one go), plus the heavy packages' RECORDs that say which file is whose."""

from __future__ import annotations

import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reprise.core import keys
from reprise.core.copyout import Entry, entries_to_copy, names_list, parse_listing
from reprise.core.errors import EngineError
from reprise.core.layers import dist_name, owners, package_of
from reprise.core.workspace import normalize
from reprise.edges.container_config import NO_ENTRYPOINT, ContainerSpec
from reprise.edges.docker import Engine
from reprise.edges.runfiles import open_dir, open_regular, read_regular
from reprise.edges.untar import unpack

LISTING_LIMIT = 256 << 20  # find's listing of the environment
RECORD_LIMIT = 64 << 20  # a package's RECORD


LISTED = "/tmp/reprise-copy"  # in the build stage's container: the names, then their archive


def copy_out(
    engine: Engine,
    image: str,
    copies: Sequence[Copy],
    files: Sequence[str],
    dest: Path,
    *,
    listed: bytes = b"",
    keep_listed: Callable[[str], bool] = lambda _: True,
    limit: int | None = None,
) -> None:
    """Copy out of ``image`` each of ``copies``, (small) ``files``, and the entries ``listed``
    (tar's ``--null -T`` list of paths relative to /, each alone: a folder without what it
    holds) into ``dest`` (same paths); of the listed, only those for which ``keep_listed``
    (the path relative to /) is true are unpacked.

    The listed are archived by one short container inside the build stage and that archive
    is read whole: each copy request costs the engine a mount of the container's files
    (33 subtrees took 5 s for 38 MB; one archive of the same files about 1 s). ``limit``:
    the bytes of files each copy may unpack (RecordError past it)."""
    command = ["true"]
    if listed:
        command = ["tar", "--null", "--no-recursion", "--hard-dereference", "-C", "/"]
        command += ["-cf", f"{LISTED}.tar", "-T", f"{LISTED}.list"]
    container = engine.create(
        ContainerSpec(
            image=image,
            command=command,
            environment={},
            mounts=[],
            working_dir="/",
            user="",
            labels={},
            entrypoint=NO_ENTRYPOINT,
        )
    )

    def one(copy: Copy) -> None:
        stream = engine.get_archive(container, copy.path)
        unpack(stream, copy.folder, strip=copy.strip, limit=limit)

    try:
        for path in files:  # first: nothing unpacked yet could have put a link on the way
            target = dest / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_one_file(engine.get_archive(container, path), path))
        if listed:
            _archive_listed(engine, container, listed, dest, keep_listed, limit)
        # Each request costs the engine a mount of the container's files: a few at once.
        with ThreadPoolExecutor(max_workers=min(4, len(copies) or 1)) as pool:
            for _ in pool.map(one, copies):
                pass
    finally:
        engine.remove_container(container)


class StageArchiveError(EngineError):
    """The build stage's own tar could not archive the environment (no GNU tar, a name it
    cannot find): the caller copies it out whole instead."""


def _archive_listed(
    engine: Engine,
    container: str,
    listed: bytes,
    dest: Path,
    keep: Callable[[str], bool],
    limit: int | None,
) -> None:
    """Put the list into the container, let its tar archive the entries, unpack the archive
    (one member of the engine's own archive of it) into ``dest``."""
    import io

    from reprise.edges.streams import ChunkReader

    names = io.BytesIO()
    with tarfile.open(fileobj=names, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(posixpath.basename(LISTED) + ".list")
        info.size = len(listed)
        tar.addfile(info, io.BytesIO(listed))
    engine.put_archive(container, posixpath.dirname(LISTED), iter([names.getvalue()]))
    engine.start(container)
    result = engine.wait(container)
    if result.status_code != 0:
        said = _tail(engine.logs(container, follow=False)).decode("utf-8", "replace").strip()
        raise StageArchiveError(
            f"the build stage's tar could not archive its environment (exit "
            f"{result.status_code}{': ' + said.splitlines()[-1] if said else ''})"
        )
    reader: IO[bytes] = ChunkReader(engine.get_archive(container, f"{LISTED}.tar"))  # type: ignore[assignment]
    try:
        with tarfile.open(fileobj=reader, mode="r|") as outer:
            for info in outer:
                inner = outer.extractfile(info) if info.isfile() else None
                if inner is None:
                    break
                unpack(_chunks(inner), dest, strip="", keep=lambda rel, _: keep(rel), limit=limit)
                return
    except tarfile.TarError as exc:
        raise EngineError(f"the engine's copy of {LISTED}.tar is not a tar: {exc}") from None
    raise EngineError(f"the engine's copy of {LISTED}.tar holds no file")


def _tail(chunks: Iterator[bytes], keep: int = 2000, most: int = 1 << 20) -> bytes:
    """The last ``keep`` bytes of at most the first ``most`` of a container's output."""
    out = b""
    seen = 0
    for chunk in chunks:
        out = (out + chunk)[-keep:]
        seen += len(chunk)
        if seen >= most:
            break
    return out


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(1 << 20):
        yield chunk


@dataclass(frozen=True)
class Copy:
    """``path`` of the image unpacked into ``folder``: ``strip`` its archive's top entry
    (or "" to keep it)."""

    path: str
    folder: Path
    strip: str


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


def _is_dist_info(path: str) -> bool:
    """``lib/python<X>/site-packages/<name>.dist-info``, exactly (no ``*`` spans folders)."""
    parts = path.split("/")
    return (
        len(parts) == 4
        and parts[0] == "lib"
        and parts[1].startswith("python")
        and parts[2] == "site-packages"
        and parts[3].endswith(".dist-info")
    )


def heavy_owners(
    engine: Engine, image: str, heavy: set[str], listing: Sequence[Entry]
) -> dict[str, str]:
    """Which venv file belongs to which heavy package, from the heavy packages' RECORDs
    alone (copied out first, so that a reused package's files need not be)."""
    if not heavy:
        return {}
    venv = keys.CONTAINER_VENV
    wanted = [
        e.path
        for e in listing
        if e.kind == "d" and _is_dist_info(e.path) and normalize(dist_name(e.path)[0]) in heavy
    ]
    records = {}
    with tempfile.TemporaryDirectory(prefix="reprise-records-") as tmp:
        # Each into a folder of its own: none is unpacked below what another unpacked.
        folders = [Path(tmp) / str(i) for i in range(len(wanted))]
        copies = [
            Copy(f"{venv}/{rel}", folder, posixpath.basename(rel))
            for rel, folder in zip(wanted, folders, strict=True)
        ]
        copy_out(engine, image, copies, [], Path(tmp))
        for rel, folder in zip(wanted, folders, strict=True):
            try:  # a link in the build stage stays a link here: never read through
                found = read_regular(folder, "RECORD", RECORD_LIMIT)
            except OSError:
                continue
            if found is not None and not found[1]:
                records[rel] = found[0].decode("utf-8", "replace")
    site = next(iter(sorted({posixpath.dirname(r) for r in records})), "")
    return owners(records, site) if site else {}


SCRATCH_IN_MEMORY = 512 << 20  # bytes copied out at most to unpack and pack in memory


def scratch_parent(size: int | None) -> str | None:
    """Where the environment is copied out and packed: memory (/dev/shm) when it is small
    (a rebuild that reuses the heavy packages' layers: tens of MB, but thousands of small
    files, which a busy disk made take seconds) and /dev/shm has room four times over; the
    default temporary folder otherwise, and whenever TMPDIR says where."""
    if size is None or size > SCRATCH_IN_MEMORY or os.environ.get("TMPDIR"):
        return None
    try:
        free = os.statvfs("/dev/shm")
    except OSError:
        return None
    room = free.f_bavail * free.f_frsize >= 4 * size
    return "/dev/shm" if room and os.access("/dev/shm", os.W_OK | os.X_OK) else None


def copied_bytes(listing: Sequence[Entry], owner: Mapping[str, str], skip: set[str]) -> int:
    """The bytes of the environment's files that are copied out (those of ``skip`` are not)."""
    return sum(e.size for e in listing if e.kind != "d" and package_of(e.path, owner) not in skip)


def venv_names(listing: Sequence[Entry], owner: Mapping[str, str], skip: set[str]) -> bytes:
    """The environment's entries but the files of the packages in ``skip`` (whose layers are
    reused), as ``copy_out``'s ``listed``."""
    venv = keys.CONTAINER_VENV.lstrip("/")
    return names_list(entries_to_copy(listing, lambda rel: package_of(rel, owner) in skip), venv)


UV_STAMP = "uv_cache.json"


def drop_install_stamps(venv: Path) -> list[str]:
    """Remove the one file an install writes differently each time: uv's
    ``<dist>.dist-info/uv_cache.json`` (when it installed a wheel from a folder), with its
    line in RECORD, so that the same lock packs to the same bytes. The dist-info folders
    named, in order. Nothing is reached through a link (the build stage made these files)."""
    dropped = []
    for stamp in sorted(venv.glob(f"lib/python*/site-packages/*.dist-info/{UV_STAMP}")):
        folder = stamp.parent.relative_to(venv).as_posix()
        try:
            with open_dir(venv, folder) as dir_fd:
                os.unlink(UV_STAMP, dir_fd=dir_fd)  # a link is removed, never followed
            found = read_regular(venv, f"{folder}/RECORD", RECORD_LIMIT)
        except OSError:
            continue
        dropped.append(stamp.parent.name)
        if found is None or found[1]:
            continue
        line = f"{stamp.parent.name}/{UV_STAMP},"
        lines = found[0].decode("utf-8", "surrogateescape").splitlines(keepends=True)
        kept = "".join(x for x in lines if not x.startswith(line))
        fd = open_regular(venv, f"{folder}/RECORD", os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as fh:
            fh.write(kept.encode("utf-8", "surrogateescape"))
    return dropped
