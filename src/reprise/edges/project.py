"""A project as reprise sees it: its settings, pyproject.toml and a fresh uv.lock."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.core.errors import LockError, ProjectError
from reprise.core.settings import Settings, load_settings


def read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(
            f"no pyproject.toml in {root}",
            path=str(path),
            hint="run reprise inside a Python project, or pass --project DIR",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path} is not valid TOML: {exc}", path=str(path)) from exc


@dataclass(frozen=True)
class Project:
    settings: Settings
    pyproject: Mapping[str, Any]
    pyproject_bytes: bytes

    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def requires_python(self) -> str | None:
        value = (self.pyproject.get("project") or {}).get("requires-python")
        return str(value) if value else None


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` with a pyproject.toml."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise ProjectError(
        f"no pyproject.toml in {start} or above",
        path=str(start),
        hint="run reprise inside your project, or pass --project DIR",
    )


def load_project(root: Path, environ: Mapping[str, str] | None = None) -> Project:
    root = root.resolve()
    data = read_pyproject(root)
    settings = load_settings(root, data, os.environ if environ is None else environ)
    return Project(settings, data, (root / "pyproject.toml").read_bytes())


def uv_binary() -> Path:
    from uv import find_uv_bin

    return Path(find_uv_bin())


def uv_version() -> str:
    """The version of the uv that reprise ships with (read from its dist-info name: cheap)."""
    import uv

    site = Path(uv.__file__).resolve().parents[1]
    for entry in site.glob("uv-*.dist-info"):
        return entry.name[len("uv-") : -len(".dist-info")]
    from importlib.metadata import version

    return version("uv")


def read_lock(project: Project) -> bytes:
    """uv.lock's bytes, once checked to exist and to match pyproject.toml.

    `uv lock --check` runs once per (pyproject.toml, uv.lock, uv) triple: a pair found fresh
    is remembered in the cache, so an unchanged project pays nothing the next time.
    """
    path = project.root / "uv.lock"
    if not path.is_file():
        raise LockError(
            f"no uv.lock in {project.root}",
            path=str(path),
            hint="reprise installs exactly what uv.lock pins: run `uv lock` and commit uv.lock",
        )
    lock = path.read_bytes()
    key = hashlib.sha256(b"\0".join([project.pyproject_bytes, lock, uv_version().encode()]))
    checked = cache_dir() / "lock-checks" / key.hexdigest()
    if checked.exists():
        return lock
    done = subprocess.run(
        [
            str(uv_binary()),
            "lock",
            "--check",
            "--offline",
            "--quiet",
            "--project",
            str(project.root),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_NO_PROGRESS": "1"},
    )
    if done.returncode != 0:
        detail = next((ln for ln in done.stderr.splitlines() if ln.startswith("error")), "")
        raise LockError(
            f"uv.lock is out of date with pyproject.toml in {project.root}"
            + (f" (uv: {detail.removeprefix('error: ')})" if detail else ""),
            path=str(path),
            hint="run `uv lock` to update it, and commit both files",
        )
    with contextlib.suppress(OSError):
        checked.parent.mkdir(parents=True, exist_ok=True)
        checked.touch()
    return lock


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """reprise's per-user cache: $XDG_CACHE_HOME/reprise (default ~/.cache/reprise)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reprise"
