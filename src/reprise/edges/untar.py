"""Unpacking a tar stream a job made (its outputs, copied out of a remote container) into a
folder of the run directory, as hostile input: names are checked, every folder is opened
without following links, files are created (never opened if they exist), links and FIFOs are
made as what they are (never followed), devices and hard links are skipped and named."""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from reprise.core import names
from reprise.core.bundleformat import BoundedTarInfo
from reprise.core.errors import InvalidNameError, RecordError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
MAX_ENTRIES = 1_000_000


@dataclass
class Unpacked:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _open_parent(root_fd: int, parts: list[str]) -> int:
    """A descriptor of the folder ``parts`` below ``root_fd``, made as needed, no link followed."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write(
    source: IO[bytes], name: str, dir_fd: int, mode: int, progress: Callable[[int], None]
) -> int:
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        mode,
        dir_fd=dir_fd,
    )
    written = 0
    try:
        while chunk := source.read(_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            written += len(chunk)
            progress(len(chunk))
    finally:
        os.close(fd)
    return written


def unpack(
    stream: Iterator[bytes],
    dest: Path,
    *,
    strip: str,
    keep: Callable[[str, tarfile.TarInfo], bool] = lambda _p, _i: True,
    progress: Callable[[int], None] = lambda _: None,
) -> Unpacked:
    """Unpack ``stream`` (a tar whose members are ``strip`` and ``strip/...``; with ``strip``
    "", any relative names, its top entry included) into ``dest``;
    members for which ``keep(path below strip, info)`` is false are left out. Raises
    RecordError for a member that names a path outside ``dest``."""
    from reprise.edges.streams import ChunkReader

    out = Unpacked()
    dest.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(dest, _DIR_FLAGS)
    reader: IO[bytes] = ChunkReader(stream)  # type: ignore[assignment]
    try:
        with tarfile.open(fileobj=reader, mode="r|", tarinfo=BoundedTarInfo) as tar:
            for count, info in enumerate(tar):
                if count >= MAX_ENTRIES:
                    raise RecordError(f"the job's {strip}/ holds more than {MAX_ENTRIES} entries")
                rel = _relative(info.name, strip)
                if rel is None or not keep(rel, info):
                    continue
                _member(tar, info, rel, root_fd, out, progress)
    finally:
        os.close(root_fd)
    return out


def _relative(name: str, strip: str) -> str | None:
    name = name.rstrip("/")
    if not strip:
        rel = name  # nothing stripped: the archive's own top entry too
    elif name == strip:
        return None
    elif not name.startswith(strip + "/"):
        raise RecordError(f"the job's archive holds {name!r}, outside {strip}/")
    else:
        rel = name[len(strip) + 1 :]
    try:
        return names.relative_path(rel, "archive member")
    except InvalidNameError as exc:
        raise RecordError(exc.message) from None


def _member(
    tar: tarfile.TarFile,
    info: tarfile.TarInfo,
    rel: str,
    root_fd: int,
    out: Unpacked,
    progress: Callable[[int], None],
) -> None:
    parts = rel.split("/")
    parent = _open_parent(root_fd, parts[:-1])
    try:
        name = parts[-1]
        if info.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
        elif info.isfile():
            source = tar.extractfile(info)
            assert source is not None
            out.bytes += _write(
                source, name, parent, 0o755 if info.mode & 0o100 else 0o644, progress
            )
            out.files += 1
        elif info.issym():
            os.symlink(info.linkname, name, dir_fd=parent)  # its text only: never followed
            out.files += 1
        elif info.isfifo():
            os.mkfifo(name, 0o644, dir_fd=parent)
            out.files += 1
        else:
            out.skipped.append(f"{rel} ({'hard link' if info.islnk() else 'device'})")
    finally:
        os.close(parent)
