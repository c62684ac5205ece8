"""Unpacking a tar stream a job made (its outputs, copied out of a remote container) into a
folder of the run directory, as hostile input: names are checked, every folder is opened
without following links, files are created (never opened if they exist), links and FIFOs are
made as what they are (never followed), devices and hard links are skipped and named."""

from __future__ import annotations

import collections
import contextlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from reprise.core import names
from reprise.core.bundleformat import BoundedTarFile
from reprise.core.errors import BundleError, InvalidNameError, RecordError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
MAX_ENTRIES = 1_000_000


@dataclass
class Unpacked:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


class _Folders:
    """Descriptors of the folders files were unpacked into, the most recent kept by path,
    so that a member costs one open of its folder, not one per level (38,000 opens for 4,000
    files of a venv). A folder not kept is opened level by level from the nearest kept one
    above it, without following a link, each level closed once the next is open: at most
    LIMIT descriptors and two more, however deep the path. Each kept one was opened without
    following a link and nothing here removes or replaces an entry, so it stays the folder
    of its path."""

    LIMIT = 64  # descriptors kept at once, besides the destination's
    NEAR = 8  # levels above a folder looked up among those kept

    def __init__(self, root: Path) -> None:
        self.root = os.open(root, _DIR_FLAGS)
        self.fds: collections.OrderedDict[tuple[str, ...], int] = collections.OrderedDict()

    def get(self, parts: tuple[str, ...]) -> int:
        if not parts:
            return self.root
        found = self.fds.get(parts)
        if found is not None:
            self.fds.move_to_end(parts)
            return found
        start, fd = 0, self.root
        for depth in range(len(parts) - 1, max(len(parts) - 1 - self.NEAR, 0), -1):
            near = self.fds.get(parts[:depth])
            if near is not None:
                start, fd = depth, near
                break
        owned = False  # whether fd is one of ours to close (not kept, not the root)
        try:
            for part in parts[start:]:
                child = _open_folder(part, fd)
                if owned:
                    os.close(fd)
                fd, owned = child, True
        except BaseException:
            if owned:
                os.close(fd)
            raise
        if len(self.fds) >= self.LIMIT:
            os.close(self.fds.popitem(last=False)[1])
        self.fds[parts] = fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        os.close(self.root)


def _open_folder(name: str, parent: int) -> int:
    """The folder ``name`` of ``parent`` (made if missing), never through a link."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
        return os.open(name, _DIR_FLAGS, dir_fd=parent)


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
    limit: int | None = None,
) -> Unpacked:
    """Unpack ``stream`` (a tar whose members are ``strip`` and ``strip/...``; with ``strip``
    "", any relative names, its top entry included) into ``dest`` (whose own parents are
    the caller's: they are not checked); members for which ``keep(path below strip, info)``
    is false are left out. Raises RecordError for a member that names a path outside
    ``dest``, for an archive that is not one, and past ``limit`` bytes of files."""
    from reprise.edges.streams import ChunkReader, Prefetch

    out = Unpacked()
    dest.mkdir(parents=True, exist_ok=True)
    folders = _Folders(dest)
    # Read ahead in a thread: the engine streams on while the files are written here.
    reader = io.BufferedReader(Prefetch(ChunkReader(stream), depth=64), _CHUNK)  # type: ignore[arg-type]
    try:
        with BoundedTarFile.open(fileobj=reader, mode="r|") as tar:
            for count, info in enumerate(tar):
                if count >= MAX_ENTRIES:
                    raise RecordError(f"the job's {strip}/ holds more than {MAX_ENTRIES} entries")
                rel = _relative(info.name, strip)
                if rel is None or not keep(rel, info):
                    continue
                _within(out.bytes + info.size, limit, strip or dest.name)  # before writing
                _member(tar, info, rel, strip, folders, out, progress)
                _within(out.bytes, limit, strip or dest.name)  # a hard link's copy counts too
    except (tarfile.TarError, BundleError, RecursionError) as exc:
        raise RecordError(
            f"the archive of {strip or dest.name} is not a valid tar: {exc}"
        ) from None
    finally:
        folders.close()
    return out


def _within(size: int, limit: int | None, what: str) -> None:
    if limit is not None and size > limit:
        raise RecordError(f"the archive of {what} holds over {limit} bytes")


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
    strip: str,
    folders: _Folders,
    out: Unpacked,
    progress: Callable[[int], None],
) -> None:
    parts = rel.split("/")
    parent = folders.get(tuple(parts[:-1]))
    name = parts[-1]
    if info.isdir():
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
    elif info.isfile():
        source = tar.extractfile(info)
        assert source is not None
        out.bytes += _write(source, name, parent, 0o755 if info.mode & 0o100 else 0o644, progress)
        out.files += 1
    elif info.issym():
        os.symlink(info.linkname, name, dir_fd=parent)  # its text only: never followed
        out.files += 1
    elif info.isfifo():
        os.mkfifo(name, 0o644, dir_fd=parent)
        out.files += 1
    elif info.islnk() and (target := _linked(info.linkname, strip, folders)) is not None:
        # a second name of a file unpacked before (Docker's archive sends it so): a copy
        with os.fdopen(target, "rb") as source:
            out.bytes += _write(source, name, parent, 0o644, progress)
        out.files += 1
    else:
        out.skipped.append(f"{rel} ({'hard link' if info.islnk() else 'device'})")


def _linked(linkname: str, strip: str, folders: _Folders) -> int | None:
    """A descriptor of the regular file an archive's hard link names, when it is one this
    unpack wrote (below the destination, reached without following a link); else None."""
    try:
        rel = _relative(linkname, strip)
    except RecordError:
        return None
    if rel is None:
        return None
    parts = rel.split("/")
    try:
        parent = folders.get(tuple(parts[:-1]))
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd
