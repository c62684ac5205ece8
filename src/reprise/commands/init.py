"""`reprise init`: add a [tool.reprise] section for what the project runs, ignore the runs
directory, and say what to type next.

pyproject.toml and .gitignore keep every byte init does not add (their line endings too); the
section is written in the file's own line ending.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.core import initsection
from reprise.core.errors import ProjectError
from reprise.edges.project import find_root, find_workspace
from reprise.edges.runstore import atomic_write

# Root .py files larger than this are not read to look for a Hydra app.
_MAX_SOURCE = 1 << 20


@dataclass(frozen=True)
class InitResult:
    path: Path  # the pyproject.toml written
    detected: initsection.Detected
    gitignore_changed: bool
    needs_lock: bool  # no uv.lock yet
    notes: tuple[str, ...]  # what init found and did, one line each (for stderr)
    next_steps: tuple[str, ...]  # the commands to type next (for stdout)


def init_root(cwd: Path) -> Path:
    """The folder `reprise init` works on without --project: the current one when it has a
    pyproject.toml or a requirements file (to say how to migrate it), else the nearest one
    above with a pyproject.toml."""
    if (cwd / "pyproject.toml").is_file() or initsection.requirements_files(_files(cwd)):
        return cwd
    return find_root(cwd)


def _files(folder: Path) -> set[str]:
    try:
        return {p.name for p in folder.iterdir() if p.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _sources(root: Path, files: set[str]) -> dict[str, str]:
    out = {}
    for name in sorted(files):
        path = root / name
        if name.endswith(".py") and path.stat().st_size <= _MAX_SOURCE:
            out[name] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _lock_path(root: Path) -> Path:
    """Where the project's uv.lock is: at its uv workspace's root when it is a member."""
    try:
        workspace = find_workspace(root.resolve())
    except ProjectError:  # a broken pyproject.toml above is not this project's concern
        workspace = None
    return (workspace[0] if workspace else root.resolve()) / "uv.lock"


def _read_toml(path: Path, data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path} is not valid TOML: {exc}", path=str(path)) from None


def _read_plain(path: Path) -> tuple[bytes | None, bool]:
    """(the bytes of ``path``, whether it is a symlink) when it is a regular file or a link to
    one; (None, False) when nothing is there. ProjectError when init could neither read it nor
    write it back (a folder, a dangling link, an unreadable file), before anything is written."""
    try:
        link = stat.S_ISLNK(path.lstat().st_mode)
        return path.read_bytes(), link
    except FileNotFoundError:
        if path.is_symlink():
            raise ProjectError(
                f"{path} is a link to {path.readlink()}, which does not exist",
                path=str(path),
                hint="remove the link or make its target, then run reprise init again",
            ) from None
        return None, False
    except OSError as exc:
        what = "a folder" if isinstance(exc, IsADirectoryError) else f"unreadable: {exc.strerror}"
        raise ProjectError(
            f"{path} is {what}: reprise init changes nothing",
            path=str(path),
            hint=f"make {path.name} a regular file (or remove it), then run reprise init again",
        ) from None


def _not_a_link(path: Path, is_link: bool, hint: str) -> None:
    """Writing a file replaces it: refuse to turn a link into a file behind the user's back."""
    if is_link:
        raise ProjectError(
            f"{path} is a symlink (to {path.readlink()}): reprise init would replace the link "
            "with a file, and changes nothing",
            path=str(path),
            hint=hint,
        )


def _write(path: Path, data: bytes) -> None:
    """Replace the file atomically, keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    atomic_write(path, data)
    if mode is not None:
        path.chmod(mode)


def _detection_notes(d: initsection.Detected) -> list[str]:
    if d.command is None:
        notes = [
            "no command found (no [project.scripts], train.py, main.py or Hydra app): write it "
            "under [tool.reprise] in pyproject.toml (see the TODO there) before you run"
        ]
    else:
        notes = [f"command: {d.command} (from {d.source})"]
    if d.hydra:
        notes.append(f"config: none, {d.hydra} is a Hydra app and reads its own conf/")
    elif d.config:
        notes.append(f"config: {d.config}")
    else:
        notes.append("config: none (no config.yaml or config.yml at the project root)")
    return [*notes, *d.notes]


def init_project(root: Path, *, force: bool = False, cwd: Path | None = None) -> InitResult:
    """Write the [tool.reprise] section (replace it with ``force``) and ignore runs/.

    ``cwd``, when given and not ``root``, makes the next steps start with a `cd` to it.
    """
    path = root / "pyproject.toml"
    files = _files(root)
    data, path_is_link = _read_plain(path)
    pyproject = _read_toml(path, data) if data is not None else None
    error = initsection.migration_error(pyproject, files, str(root))
    if error is not None:
        raise error
    assert data is not None and pyproject is not None
    has_section = "reprise" in (pyproject.get("tool") or {})
    if has_section and not force:
        raise ProjectError(
            f"{path} already has a [tool.reprise] section",
            path=str(path),
            hint="edit it, or pass --force to replace it with the defaults",
        )
    conf = _files(root / "conf")
    detected = initsection.detect(pyproject, files, conf, _sources(root, files) if conf else None)
    name = str((pyproject.get("project") or {}).get("name") or root.name)
    section = initsection.render_section(name, detected)
    new = initsection.with_section(data, section, replace=has_section)

    gitignore = root / ".gitignore"
    old_ignore, ignore_is_link = _read_plain(gitignore)
    new_ignore = initsection.gitignore_with_runs(old_ignore, initsection.line_ending(data))
    # Everything checked before anything is written: never a pyproject.toml changed and then
    # a .gitignore that cannot be.
    _not_a_link(
        path,
        path_is_link,
        f"run reprise init in the folder of the file itself ({path.resolve().parent}), or "
        "replace the link with a copy first",
    )
    if new_ignore is not None:
        _not_a_link(
            gitignore, ignore_is_link, f"add runs/ to {gitignore.resolve()}, then run init again"
        )
    _write(path, new)
    if new_ignore is not None:
        _write(gitignore, new_ignore)

    lock = _lock_path(root)
    needs_lock = not lock.is_file()
    notes = _detection_notes(detected)
    notes.append(
        "added runs/ to .gitignore"
        if new_ignore is not None
        else ".gitignore already ignores runs/"
    )
    if needs_lock:
        notes.append("no uv.lock yet: `uv lock` writes it (reprise installs exactly what it pins)")
    moved = cwd is not None and cwd.resolve() != root.resolve()
    steps = initsection.next_steps(
        needs_lock=needs_lock,
        cd=str(root) if moved else None,
        lock=os.path.relpath(lock, root.resolve()),
    )
    return InitResult(
        path, detected, new_ignore is not None, needs_lock, tuple(notes), tuple(steps)
    )
