"""A project as uv sees it, and what the image installs of it. Pure.

uv resolves a workspace (or a single project, a workspace of one) into one uv.lock at its root.
The image installs the lock's third-party packages (``uv sync --frozen --no-install-workspace``)
and, instead of building the project's own packages into it (the image would then change with
every code change), links them to the code at the commit as an editable install would: their
import roots on ``sys.path`` (``src/`` or flat), their ``[project.scripts]`` as executables
and a ``.dist-info`` for ``importlib.metadata``. Only pyproject.toml decides these files, so
the image is rebuilt when the packaging changes, not when the code does.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reprise.core.errors import LockError, ProjectError

_ENTRY = re.compile(r"^\s*([\w.]+)\s*:\s*([\w.]+)\s*(\[.*\])?\s*$")
_NAME = re.compile(r"[-_.]+")
# A distribution's name as PEP 508 writes it; [tool.reprise] package and [project] name.
PACKAGE_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]{0,126}[A-Z0-9])", re.IGNORECASE)
# A version as it may stand in a .dist-info folder's name (PEP 440's characters).
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,127}")
# A script is a plain file name in the venv's bin/ ...
_SCRIPT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# ... that takes the place of nothing a venv has there by itself (the interpreter, pip, uv,
# the activation scripts): the image and every job run them by these names.
_VENV_OWN = re.compile(
    r"(python[0-9.]*|pythonw|pip[0-9.]*|pydoc.*|uvx?|activate.*|deactivate.*)",
    re.IGNORECASE,
)


def normalize(name: str) -> str:
    """PEP 503 names: uv.lock spells them so."""
    return _NAME.sub("-", name).lower()


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str | None
    source: str  # "editable", "virtual", "registry", "path", "git", "directory", "url"
    path: str | None  # for editable/virtual/directory sources: relative to the lock's folder
    dependencies: tuple[str, ...]


def parse_lock(text: bytes | str) -> dict[str, LockedPackage]:
    """The packages of a uv.lock by normalized name (LockError when it is not one)."""
    try:
        data = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LockError(f"uv.lock is not valid TOML: {exc}") from None
    out: dict[str, LockedPackage] = {}
    for item in data.get("package") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        source = item.get("source") or {}
        kind = next(iter(source), "registry") if isinstance(source, dict) else "registry"
        path = source.get(kind) if kind in ("editable", "virtual", "directory", "path") else None
        deps = tuple(
            normalize(str(d["name"]))
            for d in item.get("dependencies") or []
            if isinstance(d, dict) and isinstance(d.get("name"), str)
        )
        name = normalize(item["name"])
        out[name] = LockedPackage(name, item.get("version"), kind, path, deps)
    return out


def workspace_packages(lock: Mapping[str, LockedPackage]) -> list[LockedPackage]:
    """The workspace's own packages: what uv installs from the code (editable) or not at all
    (virtual)."""
    return [p for p in lock.values() if p.source in ("editable", "virtual")]


def linked(lock: Mapping[str, LockedPackage], package: str | None) -> list[LockedPackage]:
    """``package`` and the workspace packages it depends on (every workspace package when
    ``package`` is None): editable ones are what `uv sync` would install from the code,
    virtual ones (``package = false``) only put their folder on sys.path."""
    own = {p.name: p for p in workspace_packages(lock)}
    if package is None:
        return sorted(own.values(), key=lambda p: p.name)
    start = normalize(package)
    if start not in own:
        raise LockError(
            f"package {package!r} is not a member of the workspace (uv.lock lists "
            f"{', '.join(sorted(own)) or 'none'})",
            hint="set [tool.reprise] package to one of the workspace's members",
        )
    seen: dict[str, LockedPackage] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        found = own.get(name)
        if found is None or name in seen:
            continue
        seen[name] = found
        todo.extend(found.dependencies)
    return sorted(seen.values(), key=lambda p: p.name)


@dataclass(frozen=True)
class SyncOptions:
    """Which parts of the lock the image installs: uv's defaults unless a setting says so."""

    package: str | None = None  # a workspace member; None: the project (or every member)
    all_packages: bool = False
    groups: tuple[str, ...] = ()
    default_groups: bool = True
    extras: tuple[str, ...] = ()

    def flags(self) -> list[str]:
        out = ["--frozen", "--no-install-workspace"]
        if self.package:
            out += ["--package", self.package]
        elif self.all_packages:
            out.append("--all-packages")
        if not self.default_groups:
            out.append("--no-default-groups")
        for group in self.groups:
            out += ["--group", group]
        for extra in self.extras:
            out += ["--extra", extra]
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "all_packages": self.all_packages,
            "groups": list(self.groups),
            "default_groups": self.default_groups,
            "extras": list(self.extras),
        }


@dataclass(frozen=True)
class Member:
    """A workspace package as its pyproject.toml declares it (``rel``: its folder, relative to
    the workspace root; "" for the root itself)."""

    name: str
    rel: str
    pyproject: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pyproject_path(self) -> str:
        return f"{self.rel}/pyproject.toml" if self.rel else "pyproject.toml"


def _checked(value: object, pattern: re.Pattern[str], what: str, member: Member) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise ProjectError(
        f"{what} {value!r} in {member.pyproject_path} cannot name a file reprise writes "
        "into the image",
        path=member.pyproject_path,
        hint="use letters, digits, '.', '_' and '-' (PEP 508 names, PEP 440 versions)",
    )


def _table(parent: Mapping[str, Any], key: str, member: Member) -> Mapping[str, Any]:
    """``parent[key]``, a TOML table (``key``: "project", or a key of [project])."""
    table = parent.get(key) or {}
    if not isinstance(table, dict):
        where = key if key == "project" else f"project.{key}"
        raise ProjectError(
            f"[{where}] in {member.pyproject_path} is not a table", path=member.pyproject_path
        )
    return table


def _script_name(name: str, member: Member) -> str:
    _checked(name, _SCRIPT, "the script name", member)
    if _VENV_OWN.fullmatch(name):
        raise ProjectError(
            f"the script {name!r} in {member.pyproject_path} would take the place of the "
            "virtual environment's own bin/" + name,
            path=member.pyproject_path,
            hint="rename the script: python, pip, uv and the activate scripts are the venv's",
        )
    return name


def _script(target: str, python: str) -> str:
    match = _ENTRY.match(target)
    if match is None:
        raise LockError(f"the entry point {target!r} is not 'module:object'")
    module, obj = match.group(1), match.group(2)
    top = obj.split(".", 1)[0]
    return (
        f"#!{python}\n"
        "# Made by reprise: the project's entry point, as an editable install would make it.\n"
        "import sys\n"
        f"from {module} import {top}\n"
        "if __name__ == '__main__':\n"
        f"    sys.exit({obj}())\n"
    )


def _entry_points(project: Mapping[str, Any], member: Member) -> str:
    groups: dict[str, Mapping[str, Any]] = {}
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    if project.get("gui-scripts"):
        groups["gui_scripts"] = project["gui-scripts"]
    for name, table in sorted(_table(project, "entry-points", member).items()):
        if isinstance(table, dict):
            groups[str(name)] = table
    lines = []
    for group, table in sorted(groups.items()):
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in sorted(table.items())]
        lines.append("")
    return "\n".join(lines)


def link_files(
    members: Sequence[Member], packages: Iterable[LockedPackage], *, python: str, code_dir: str
) -> dict[str, bytes]:
    """The files that link ``packages`` to the code: ``lib/reprise-project.json`` (their
    import roots, ``src/`` and flat) and, for the editable ones, ``bin/<script>`` (their
    ``[project.scripts]``) and ``lib/<name>-<version>.dist-info/``. Every name that becomes
    a file name is checked first (ProjectError): plain, and none of the venv's own."""
    sources = {p.name: p.source for p in packages}
    files: dict[str, bytes] = {}
    roots: list[str] = []
    for member in sorted(members, key=lambda m: m.rel):
        source = sources.get(normalize(member.name))
        if source is None:
            continue
        base = f"{code_dir}/{member.rel}" if member.rel else code_dir
        roots += [f"{base}/src", base]
        if source != "editable":
            continue
        project = _table(member.pyproject, "project", member)
        name = _checked(member.name, PACKAGE_NAME, "the package name", member)
        version = _checked(
            str(project.get("version") or "0+unknown"), _VERSION, "the version", member
        )
        dist = f"lib/{normalize(name).replace('-', '_')}-{version}.dist-info"
        files[f"{dist}/METADATA"] = (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode()
        files[f"{dist}/INSTALLER"] = b"reprise\n"
        for kind in ("scripts", "gui-scripts"):
            for script, target in sorted(_table(project, kind, member).items()):
                files[f"bin/{_script_name(script, member)}"] = _script(str(target), python).encode()
        entry_points = _entry_points(project, member)
        if entry_points:
            files[f"{dist}/entry_points.txt"] = entry_points.encode()
    files["lib/reprise-project.json"] = (
        json.dumps({"import_roots": roots}, indent=1, sort_keys=True) + "\n"
    ).encode()
    return dict(sorted(files.items()))
