"""Files under a run directory that the job could reach, opened without ever following a link.

The job writes the run's writable subfolders (``outputs/``, ``checkpoints/``, ``logs/``,
``runtime/``) and may plant symlinks, FIFOs or devices there. The CLI, often root, opens
everything below them relative to a directory descriptor, one component at a time, with
``O_NOFOLLOW`` (and ``O_NONBLOCK``, so that a FIFO cannot hang it), accepts only regular files
with a single link, and bounds what it reads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class PlantedFileError(OSError):
    """Something other than a regular file (a link, a FIFO, a device, a directory) is where
    reprise expected one of its own, or of the job's, regular files."""


def _describe(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} hard links"
    return "not a regular file"


@contextlib.contextmanager
def open_dir(root: Path, rel: str = "") -> Iterator[int]:
    """A descriptor of ``root/rel``, each component of ``rel`` opened without following."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in [p for p in rel.split("/") if p]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    return parent, name


def open_regular(root: Path, rel: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``root/rel`` as a regular, single-link file; PlantedFileError otherwise."""
    parent, name = _split(rel)
    with open_dir(root, parent) as dir_fd:
        try:
            fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                raise PlantedFileError(exc.errno, f"{rel} is {_describe(st)}") from None
            raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise PlantedFileError(errno.EINVAL, f"{rel} is {_describe(st)}")
    os.set_blocking(fd, True)
    return fd


def read_regular(root: Path, rel: str, limit: int) -> tuple[bytes, bool] | None:
    """(at most ``limit`` bytes of ``root/rel``, whether it was longer), or None when absent.
    PlantedFileError when it is not a regular file."""
    try:
        fd = open_regular(root, rel)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def read_text_or_none(root: Path, rel: str, limit: int) -> str | None:
    """The file's text (whole, or None when absent, too large or not a regular file)."""
    try:
        found = read_regular(root, rel, limit)
    except OSError:
        return None
    if found is None or found[1]:
        return None
    return found[0].decode("utf-8", "replace")


def remove_planted(root: Path, rel: str) -> str | None:
    """Remove whatever is at ``root/rel`` unless it is a regular single-link file; returns
    what it was (None when nothing had to go). Links are removed, never followed."""
    parent, name = _split(rel)
    with open_dir(root, parent) as dir_fd:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            return None
        what = _describe(st)
        if stat.S_ISDIR(st.st_mode):
            from reprise.edges.trees import remove_tree_at

            remove_tree_at(dir_fd, name)
        else:
            os.unlink(name, dir_fd=dir_fd)
        return what


def replace_file(root: Path, rel: str, data: bytes) -> None:
    """Write ``root/rel`` whole and at once (a temporary file beside it, then a rename that
    replaces whatever was there, a link included, never following it), each folder on the
    way opened without following a link: for reprise's files in folders the job can write."""
    parent, name = _split(rel)
    with open_dir(root, parent) as dir_fd:
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"  # a name the job cannot have planted
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            with contextlib.suppress(
                FileNotFoundError
            ):  # a folder there: a rename cannot replace it
                if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    from reprise.edges.trees import remove_tree_at

                    remove_tree_at(dir_fd, name)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def remove_entry(root: Path, rel: str) -> None:
    """Remove whatever is at ``root/rel`` (a file, a link, a folder and all it holds), each
    folder on the way opened without following a link; nothing there is fine."""
    parent, name = _split(rel)
    with contextlib.suppress(FileNotFoundError), open_dir(root, parent) as dir_fd:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except IsADirectoryError:
            from reprise.edges.trees import remove_tree_at

            remove_tree_at(dir_fd, name)


def open_append(root: Path, rel: str) -> tuple[int, str | None]:
    """A descriptor to append to (and read) ``root/rel`` (created 0644 if missing). Anything planted
    there first is removed (and named in the second value)."""
    planted = remove_planted(root, rel)
    fd = open_regular(root, rel, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    return fd, planted


def read_tail(root: Path, rel: str, max_bytes: int) -> str:
    """The last ``max_bytes`` of a regular file, as text; empty when absent or planted."""
    try:
        fd = open_regular(root, rel)
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - max_bytes), os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, max_bytes - len(data)):
            data += chunk
            if len(data) >= max_bytes:
                break
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")
