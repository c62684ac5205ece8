"""Whole trees the job made (its folders of a run, a prepare step's staging), changed or
removed by the CLI without recursion and without following a link.

A job can make a tree deeper than any recursive walk survives (Python's ``os.fwalk`` and
``shutil.rmtree`` recurse per level) and wider than memory should hold. Both walks here keep
an explicit stack of directory descriptors, opened one component at a time with
``O_NOFOLLOW``; ``remove_tree`` keeps that stack short by moving a too-deep folder up to the
top of the tree before going on with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_CHOWN_DEPTH = 256  # as deep as the manifest goes (edges.hashing.MAX_DEPTH)
_REMOVE_DEPTH = 32


def _entries(fd: int) -> list[tuple[str, bool]]:
    """(name, is a real folder) for each entry of the folder open at ``fd``; links are not."""
    with os.scandir(fd) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]


def chown_tree(root: Path, uid: int, gid: int) -> int:
    """Give ``root`` and everything below it to uid:gid, links themselves (never their
    targets). Returns how many folders lay deeper than MAX_CHOWN_DEPTH, left as they were."""
    os.chown(root, uid, gid, follow_symlinks=False)
    if not stat.S_ISDIR(root.lstat().st_mode):
        return 0
    skipped = 0
    stack: list[tuple[int, list[str]]] = []
    try:
        stack.append((os.open(root, _DIR_FLAGS), []))
        stack[-1][1].extend(_chown_entries(stack[-1][0], uid, gid))
        while stack:
            fd, folders = stack[-1]
            if not folders:
                os.close(fd)
                stack.pop()
                continue
            name = folders.pop()
            if len(stack) >= MAX_CHOWN_DEPTH:
                skipped += 1
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # gone, or no longer a folder: nothing below to change
                continue
            stack.append((child, _chown_entries(child, uid, gid)))
    finally:
        for fd, _ in stack:
            os.close(fd)
    return skipped


def _chown_entries(fd: int, uid: int, gid: int) -> list[str]:
    """Change every entry of the folder at ``fd`` (links themselves); returns its folders."""
    folders = []
    for name, is_dir in _entries(fd):
        with contextlib.suppress(FileNotFoundError):
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        if is_dir:
            folders.append(name)
    return folders


def _unlink_entries(fd: int) -> list[str]:
    """Remove every non-folder entry of the folder at ``fd``; returns its folders' names."""
    folders = []
    for name, is_dir in _entries(fd):
        if is_dir:
            folders.append(name)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    return folders


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything below it (a link at ``path`` itself is removed, not
    followed); nothing there is no error."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink()
        return
    top = os.open(path, _DIR_FLAGS)
    try:
        _empty(top)
    finally:
        os.close(top)
    path.rmdir()


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove the folder ``name`` of the folder open at ``dir_fd`` and everything below it."""
    top = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=dir_fd)


def _empty(top: int) -> None:
    """Remove everything in the folder open at ``top``, keeping at most _REMOVE_DEPTH
    descriptors: a folder deeper than that is first moved up to ``top``."""
    # (descriptor, its subfolders still to remove, its name in the folder above)
    stack: list[tuple[int, list[str], str]] = [(top, _unlink_entries(top), "")]
    try:
        while stack:
            fd, folders, name = stack[-1]
            if not folders:
                stack.pop()
                if stack:
                    os.close(fd)
                    with contextlib.suppress(FileNotFoundError):
                        os.rmdir(name, dir_fd=stack[-1][0])
                continue
            child_name = folders.pop()
            try:
                child = os.open(child_name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError:  # no longer a folder (a link, a file): it goes as it is
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child_name, dir_fd=fd)
                continue
            if len(stack) >= _REMOVE_DEPTH:
                os.close(child)
                moved = f".reprise-rm-{secrets.token_hex(8)}"
                os.rename(child_name, moved, src_dir_fd=fd, dst_dir_fd=top)
                stack[0][1].append(moved)
                continue
            stack.append((child, _unlink_entries(child), child_name))
    finally:
        for fd, _, _ in stack[1:]:
            os.close(fd)


def copy_job_tree(
    src: Path, dst: Path, *, uid: int | None, skip: tuple[str, ...] = ()
) -> list[str]:
    """Copy the folders and regular files of ``src`` (a job's folder, hostile) into ``dst``,
    as deep as MAX_CHOWN_DEPTH, owned by ``uid`` (as root); links, FIFOs, devices and files
    with several links are left out and named in the result, as are paths in ``skip``."""
    left: list[str] = []
    if not src.is_dir() or src.is_symlink():
        return left
    dst.mkdir(parents=True, exist_ok=True)
    stack: list[tuple[int, int, str, list[tuple[str, bool]]]] = []
    try:
        top_src = os.open(src, _DIR_FLAGS)
        top_dst = os.open(dst, _DIR_FLAGS)
        stack.append((top_src, top_dst, "", _entries(top_src)))
        while stack:
            s_fd, d_fd, rel, entries = stack[-1]
            if not entries:
                os.close(s_fd)
                os.close(d_fd)
                stack.pop()
                continue
            name, is_dir = entries.pop()
            path = f"{rel}{name}"
            if path in skip:
                continue
            if is_dir:
                if len(stack) >= MAX_CHOWN_DEPTH:
                    left.append(f"{path}/ (too deep)")
                    continue
                child = os.open(name, _DIR_FLAGS, dir_fd=s_fd)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=d_fd)
                out = os.open(name, _DIR_FLAGS, dir_fd=d_fd)
                if uid is not None:
                    os.chown(out, uid, uid)
                stack.append((child, out, f"{path}/", _entries(child)))
                continue
            _copy_file(s_fd, d_fd, name, path, uid, left)
    finally:
        for s_fd, d_fd, _, _ in stack:
            os.close(s_fd)
            os.close(d_fd)
    return left


def copy_job_file(src: Path, name: str, dst: Path, as_name: str, *, uid: int | None) -> bool:
    """Copy the regular, single-link file ``src/name`` (a job's, hostile) to ``dst/as_name``
    (which must not exist), owned by ``uid``; False when it is anything else."""
    left: list[str] = []
    s_fd = os.open(src, _DIR_FLAGS)
    try:
        d_fd = os.open(dst, _DIR_FLAGS)
        try:
            _copy_file(s_fd, d_fd, name, name, uid, left, as_name=as_name)
        finally:
            os.close(d_fd)
    finally:
        os.close(s_fd)
    return not left


def _copy_file(
    s_fd: int,
    d_fd: int,
    name: str,
    path: str,
    uid: int | None,
    left: list[str],
    *,
    as_name: str | None = None,
) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=s_fd)
    except OSError:
        left.append(f"{path} (not a regular file)")
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            left.append(f"{path} (not a regular single-link file)")
            return
        out = os.open(
            as_name or name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            st.st_mode & 0o755,
            dir_fd=d_fd,
        )
        try:
            while chunk := os.read(fd, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            if uid is not None:
                os.fchown(out, uid, uid)
        finally:
            os.close(out)
    finally:
        os.close(fd)
