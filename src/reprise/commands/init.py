"""`reprise init`: add the [tool.reprise] section and ignore the runs directory."""

from __future__ import annotations

import re
from pathlib import Path

from reprise.core.errors import ProjectError
from reprise.core.settings import render_init_section
from reprise.edges.project import read_pyproject
from reprise.edges.runstore import atomic_write


def init_project(root: Path, *, force: bool = False) -> Path:
    path = root / "pyproject.toml"
    data = read_pyproject(root)
    name = (data.get("project") or {}).get("name") or root.name
    text = path.read_text(encoding="utf-8")
    has_section = "reprise" in (data.get("tool") or {})
    if has_section and not force:
        raise ProjectError(
            f"{path} already has a [tool.reprise] section",
            path=str(path),
            hint="edit it, or pass --force to replace it with the defaults",
        )
    if has_section:
        text = re.sub(r"(?ms)^\[tool\.reprise\]\n.*?(?=^\[|\Z)", "", text).rstrip() + "\n"
    atomic_write(path, text.rstrip("\n") + "\n\n" + render_init_section(str(name)))
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if "runs/" not in lines:
        atomic_write(gitignore, "\n".join([*lines, "runs/"]) + "\n")
    return path
