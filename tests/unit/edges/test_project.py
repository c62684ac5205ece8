"""Workspace members and settings checked against the project, before any build."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import ProjectError
from reprise.edges.project import workspace_members


def _workspace(root: Path, members: object) -> dict[str, object]:
    (root / "packages/a").mkdir(parents=True)
    (root / "packages/a/pyproject.toml").write_text('[project]\nname = "a"\n')
    return {"tool": {"uv": {"workspace": {"members": members}}}}


def test_members_are_found_by_their_globs(tmp_path: Path) -> None:
    data = _workspace(tmp_path, ["packages/*"])
    assert [(m.name, m.rel) for m in workspace_members(tmp_path, data)] == [("a", "packages/a")]


@pytest.mark.parametrize(
    "pattern", ["/tmp/x/*", "", "../ext/*", "packages/../../ext", "\\\\server\\x", ".", "**x"]
)
def test_a_member_outside_the_workspace_or_no_glob_is_a_project_error(
    tmp_path: Path, pattern: str
) -> None:
    ext = tmp_path.parent / "ext"
    (ext / "b").mkdir(parents=True, exist_ok=True)
    (ext / "b/pyproject.toml").write_text('[project]\nname = "b"\n')
    with pytest.raises(ProjectError) as info:
        workspace_members(tmp_path, _workspace(tmp_path, [pattern]))
    assert info.value.exit_code == 4
    assert repr(pattern) in info.value.message and info.value.hint


def test_members_must_be_a_list_of_strings(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="must be a list of strings"):
        workspace_members(tmp_path, _workspace(tmp_path, "packages/*"))


def test_a_member_linked_to_outside_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "c").mkdir(parents=True)
    (outside / "c/pyproject.toml").write_text('[project]\nname = "c"\n')
    root = tmp_path / "repo"
    root.mkdir()
    data = _workspace(root, ["packages/*"])
    (root / "packages/c").symlink_to(outside / "c")
    with pytest.raises(ProjectError, match="leads outside the workspace"):
        workspace_members(root, data)
