"""Hashing what is on disk: a run's outputs, a dataset. blake3, multi-threaded and
memory-mapped for large files, a plain read for small ones.

The walk never follows a link: it opens every directory and file relative to its parent's
descriptor with ``O_NOFOLLOW`` and records symlinks, FIFOs, sockets and devices as what they
are (and, in a run's manifest, a regular file with more than one link as a ``hardlink``). It
is iterative, with bounds on depth and on the number of entries: a job that made more gets an
incomplete manifest that says so, never an exhausted CLI.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from reprise.core import keys
from reprise.core.display import human_bytes, printable
from reprise.core.manifest import ALGORITHM, MAX_ENTRIES, Entry, Manifest
from reprise.core.progress import Say, quiet

_MMAP_THRESHOLD = 1 << 20
MAX_DEPTH = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def hash_fd(fd: int, size: int) -> str:
    import blake3

    if size >= _MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        # The open file itself (/proc/self/fd names the descriptor's file, whatever its path
        # is now): blake3 maps it and hashes on every core.
        hasher.update_mmap(f"/proc/self/fd/{fd}")
        return str(hasher.hexdigest())
    chunks = []
    while chunk := os.read(fd, max(size, 1 << 16)):
        chunks.append(chunk)
    return str(blake3.blake3(b"".join(chunks)).hexdigest())


def hash_file(path: Path) -> str:
    """blake3 of a regular file named by the user (it may be a link the user made)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def _entry(dir_fd: int, name: str, rel: str, st: os.stat_result, hardlinks: bool) -> Entry:
    import blake3

    if stat.S_ISREG(st.st_mode):
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):  # swapped since the listing
                return Entry(rel, 0, None, _kind(now.st_mode))
            kind = "hardlink" if hardlinks and now.st_nlink > 1 else "file"
            return Entry(rel, now.st_size, hash_fd(fd, now.st_size), kind)
        finally:
            os.close(fd)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        text = target[:4096]
        return Entry(
            rel,
            len(target),
            blake3.blake3(target.encode("utf-8", "surrogateescape")).hexdigest(),
            "symlink",
            text,
        )
    return Entry(rel, 0, None, _kind(st.st_mode))


# A file this large is named as it is hashed; a walk this large says how long it took.
LARGE = 256 << 20


class _Walk:
    """One bounded, descriptor-based walk below a directory."""

    def __init__(self, limit: int, hardlinks: bool, say: Say) -> None:
        self.entries: list[Entry] = []
        self.limit = limit
        self.hardlinks = hardlinks
        self.note: str | None = None
        self.say = say
        self.bytes = 0

    def full(self) -> bool:
        if len(self.entries) >= self.limit:
            self.note = f"more than {self.limit} entries: the rest was not hashed"
            return True
        return False

    def directory(self, dir_fd: int, rel: str, depth: int, skip: frozenset[str]) -> None:
        with os.scandir(dir_fd) as it:
            names = sorted(e.name for e in it)
        for name in names:
            if self.note is not None or self.full():
                return
            child = f"{rel}/{name}" if rel else name
            if child in skip:
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                if stat.S_ISREG(st.st_mode):
                    self.bytes += st.st_size
                    if st.st_size >= LARGE:
                        self.say(f"hashing {printable(child)} ({human_bytes(st.st_size)})")
                self.entries.append(_entry(dir_fd, name, child, st, self.hardlinks))
                continue
            if depth >= MAX_DEPTH:
                self.entries.append(Entry(child, 0, None, "dir-too-deep"))
                continue
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                self.directory(sub, child, depth + 1, skip)
            finally:
                os.close(sub)


def walk(
    root: Path,
    subdirs: Iterable[str] = ("",),
    *,
    skip: Iterable[str] = (),
    limit: int = MAX_ENTRIES,
    hardlinks: bool = False,
    say: Say = quiet,
) -> Manifest:
    """The manifest of ``root``'s ``subdirs`` (paths relative to ``root``), minus ``skip``;
    with ``hardlinks``, regular files of more than one link are entries of that kind. Large
    files are named through ``say`` as they are hashed, and a large walk's bytes and rate."""
    walker = _Walk(limit, hardlinks, say)
    started = time.monotonic()
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        for sub in subdirs:
            try:
                fd = os.open(sub, _DIR_FLAGS, dir_fd=root_fd) if sub else os.dup(root_fd)
            except FileNotFoundError:
                continue
            try:
                walker.directory(fd, sub, 1, frozenset(skip))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    if walker.bytes >= LARGE:
        seconds = max(time.monotonic() - started, 1e-6)
        rate = human_bytes(int(walker.bytes / seconds))
        say(f"hashed {human_bytes(walker.bytes)} of outputs in {seconds:.1f} s ({rate}/s)")
    entries = tuple(sorted(walker.entries, key=lambda e: e.path))
    return Manifest(ALGORITHM, entries, complete=walker.note is None, note=walker.note)


def manifest_of_run(run_dir: Path, say: Say = quiet) -> Manifest:
    """Everything the job produced: its writable folders, minus reprise's console log and the
    runtime's own record. A file the job hard-linked is a ``hardlink`` (hashed as a file, but
    never opened afterwards as one of the job's regular files)."""
    return walk(
        run_dir,
        [d for d in keys.RUN_JOB_DIRS if d != keys.RUN_RUNTIME_DIR],
        skip=[keys.RUN_LOG],
        hardlinks=True,
        say=say,
    )
