"""A project as reprise sees it: its settings, pyproject.toml, its uv workspace, a fresh uv.lock."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.core.errors import LockError, ProjectError, SettingsError
from reprise.core.settings import Settings, load_settings
from reprise.core.workspace import Member, SyncOptions, normalize


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
    """The project a run is made of. ``settings.root`` holds its ``[tool.reprise]``;
    ``code_root`` is what goes into the run (the uv workspace root, where uv.lock is, or the
    project itself); ``workdir`` is the project's folder relative to ``code_root``."""

    settings: Settings
    pyproject: Mapping[str, Any]
    pyproject_bytes: bytes
    code_root: Path
    code_pyproject: Mapping[str, Any]
    code_pyproject_bytes: bytes
    workdir: str = ""
    members: tuple[Member, ...] = ()
    package: str | None = None  # the workspace member the run is for (None: every member)
    workspace: bool = False
    ignored_lock: Path | None = None  # a member's own uv.lock, which uv does not use

    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def lock_path(self) -> Path:
        return self.code_root / "uv.lock"

    @property
    def requires_python(self) -> str | None:
        for data in (self.pyproject, self.code_pyproject):
            value = (data.get("project") or {}).get("requires-python")
            if value:
                return str(value)
        return None

    @property
    def sync(self) -> SyncOptions:
        s = self.settings
        return SyncOptions(
            package=self.package if self.workspace else None,
            all_packages=self.workspace and self.package is None,
            groups=s.groups,
            default_groups=s.default_groups,
            extras=s.extras,
        )


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


def _workspace_table(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    table = ((data.get("tool") or {}).get("uv") or {}).get("workspace")
    return table if isinstance(table, dict) else None


def _matches(rel: str, patterns: Any) -> bool:
    return any(fnmatch.fnmatchcase(rel, str(p).rstrip("/")) for p in patterns or [])


def find_workspace(project_dir: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """The uv workspace ``project_dir`` belongs to, found as uv finds it: the nearest folder at
    or above it whose pyproject.toml has ``[tool.uv.workspace]`` listing it as a member."""
    for candidate in (project_dir, *project_dir.parents):
        if not (candidate / "pyproject.toml").is_file():
            continue
        data = read_pyproject(candidate)
        table = _workspace_table(data)
        if table is None:
            continue
        rel = project_dir.relative_to(candidate).as_posix()
        if candidate == project_dir or (
            _matches(rel, table.get("members")) and not _matches(rel, table.get("exclude"))
        ):
            return candidate, data
        return None
    return None


def _member_globs(root: Path, table: Mapping[str, Any]) -> list[str]:
    """The ``members`` globs, each relative and inside the workspace root (ProjectError)."""
    where = root / "pyproject.toml"
    globs = table.get("members") or []
    if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
        raise ProjectError(
            f"[tool.uv.workspace] members in {where} must be a list of strings",
            path=str(where),
            hint='e.g. members = ["packages/*"]',
        )
    for pattern in globs:
        if not pattern or pattern.startswith(("/", "\\")) or ".." in pattern.split("/"):
            raise ProjectError(
                f"[tool.uv.workspace] member {pattern!r} in {where} is not a folder inside the "
                "workspace",
                path=str(where),
                hint="members are globs relative to the workspace root, without '..', "
                'e.g. "packages/*"; move a package outside it into the repository',
            )
    return globs


def workspace_members(root: Path, data: Mapping[str, Any]) -> tuple[Member, ...]:
    """Every package of the workspace at ``root``: the root (when it is a project) and each
    folder its ``members`` globs name (minus ``exclude``), from their pyproject.toml. A
    member found through a link to outside the root is refused (ProjectError)."""
    table = _workspace_table(data) or {}
    found: dict[str, Member] = {}
    if (data.get("project") or {}).get("name"):
        found[""] = Member(str(data["project"]["name"]), "", data)
    inside = root.resolve()
    for pattern in _member_globs(root, table):
        try:
            paths = sorted(root.glob(pattern))
        except (ValueError, IndexError) as exc:  # '**x', '.'
            raise ProjectError(
                f"[tool.uv.workspace] member {pattern!r} in {root / 'pyproject.toml'} is not "
                f"a glob reprise can follow ({exc or 'no folder'})",
                path=str(root / "pyproject.toml"),
                hint='write members as folders or globs of them, e.g. "packages/*"',
            ) from None
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if rel == "." or not (path / "pyproject.toml").is_file():
                continue
            if _matches(rel, table.get("exclude")):
                continue
            if not (path / "pyproject.toml").resolve().is_relative_to(inside):
                raise ProjectError(
                    f"workspace member {rel} (from {pattern!r}) leads outside the workspace "
                    f"at {root}",
                    path=str(path),
                    hint="a member is a folder of the repository, not a link out of it",
                )
            member = read_pyproject(path)
            name = (member.get("project") or {}).get("name")
            if isinstance(name, str):
                found[rel] = Member(name, rel, member)
    return tuple(sorted(found.values(), key=lambda m: m.rel))


def _defined(pyprojects: list[Mapping[str, Any]], section: str) -> set[str]:
    """Normalized names of the dependency groups or extras (``section``) the pyprojects define."""
    out: set[str] = set()
    for data in pyprojects:
        table = data if section == "dependency-groups" else data.get("project") or {}
        names = table.get(section) if isinstance(table, dict) else None
        if isinstance(names, dict):
            out |= {normalize(str(name)) for name in names}
    return out


def check_groups_and_extras(
    settings: Settings, pyprojects: list[Mapping[str, Any]], where: str
) -> None:
    """Every group and extra the settings ask uv for is defined (in the project, or in one of
    the workspace's packages: ``where`` says which, and that it does not); SettingsError before
    anything is built otherwise."""
    for key, section, asked in (
        ("groups", "dependency-groups", settings.groups),
        ("extras", "optional-dependencies", settings.extras),
    ):
        defined = _defined(pyprojects, section)
        missing = [name for name in asked if normalize(name) not in defined]
        if missing:
            table = "[dependency-groups]" if key == "groups" else "[project.optional-dependencies]"
            raise SettingsError(
                f"[tool.reprise] {key} names {', '.join(map(repr, missing))}, which "
                f"{where} ({table})",
                key=key,
                value=missing[0],
                hint=f"defined: {', '.join(sorted(defined)) or 'none'}; fix {key}, or add "
                f"the {key[:-1]} to {table}",
            )


def load_project(root: Path, environ: Mapping[str, str] | None = None) -> Project:
    """The project at ``root``: its settings (from its own [tool.reprise], else its workspace
    root's), where its lock and code are, and which workspace member it runs."""
    root = root.resolve()
    env = os.environ if environ is None else environ
    data = read_pyproject(root)
    workspace = find_workspace(root)
    settings_root: Path = root
    settings_data: Mapping[str, Any] = data
    if workspace is not None and "reprise" not in (data.get("tool") or {}):
        settings_root, settings_data = workspace
    settings = load_settings(settings_root, settings_data, env, exists=os.path.isfile)
    raw = (root / "pyproject.toml").read_bytes()
    if workspace is None:
        if settings.package and normalize(settings.package) != normalize(settings.project_name):
            raise SettingsError(
                f"[tool.reprise] package {settings.package!r} names a workspace member, but "
                f"{root / 'pyproject.toml'} is no uv workspace",
                key="package",
                value=settings.package,
                hint="drop package (or REPRISE_PACKAGE): the project itself is what runs",
            )
        check_groups_and_extras(settings, [data], f"{root / 'pyproject.toml'} does not define")
        return Project(
            settings, data, raw, code_root=root, code_pyproject=data, code_pyproject_bytes=raw
        )
    ws_root, ws_data = workspace
    members = workspace_members(ws_root, ws_data)
    check_groups_and_extras(
        settings,
        [ws_data, *(m.pyproject for m in members)],
        f"no package of the workspace at {ws_root} defines",
    )
    own = next((m.name for m in members if m.rel == root.relative_to(ws_root).as_posix()), None)
    package = settings.package or (own if root != ws_root else None)
    if package is not None and package not in {m.name for m in members}:
        raise SettingsError(
            f"[tool.reprise] package {package!r} is not a member of the workspace at {ws_root}",
            key="package",
            value=package,
            hint=f"members: {', '.join(m.name for m in members) or 'none'}",
        )
    member_lock = root / "uv.lock"
    return Project(
        settings,
        data,
        raw,
        code_root=ws_root,
        code_pyproject=ws_data,
        code_pyproject_bytes=(ws_root / "pyproject.toml").read_bytes(),
        workdir="" if root == ws_root else root.relative_to(ws_root).as_posix(),
        members=members,
        package=package,
        workspace=True,
        ignored_lock=member_lock if root != ws_root and member_lock.is_file() else None,
    )


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
    path = project.lock_path
    if not path.is_file():
        where = (
            f"the workspace root {project.code_root}"
            if project.workspace
            else str(project.code_root)
        )
        raise LockError(
            f"no uv.lock in {where}",
            path=str(path),
            hint="reprise installs exactly what uv.lock pins: run `uv lock` and commit uv.lock",
        )
    lock = path.read_bytes()
    pyprojects = [(project.code_root / "pyproject.toml").read_bytes()] + [
        (project.code_root / m.rel / "pyproject.toml").read_bytes()
        for m in project.members
        if m.rel
    ]
    key = hashlib.sha256(b"\0".join([*pyprojects, lock, uv_version().encode()]))
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
            str(project.code_root),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV_NO_PROGRESS": "1"},
    )
    if done.returncode != 0:
        detail = next((ln for ln in done.stderr.splitlines() if ln.startswith("error")), "")
        raise LockError(
            f"uv.lock is out of date with pyproject.toml in {project.code_root}"
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
