"""Workspace members and settings checked against the project, before any build."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import ProjectError, SettingsError
from reprise.edges.project import load_project, workspace_members


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


def _project(root: Path, tool: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "p"\n{extra}\n[tool.reprise]\ncommand = "python t.py"\n{tool}\n'
    )
    return root


def test_groups_and_extras_must_be_defined(tmp_path: Path) -> None:
    defined = '[project.optional-dependencies]\ncuda = []\n\n[dependency-groups]\ntrain = ["x"]\n'
    root = _project(tmp_path / "p", 'groups = ["Train"]\nextras = ["cuda"]', defined)
    assert load_project(root).settings.groups == ("Train",)  # names normalize as uv's do
    for tool, message in (
        ('groups = ["missing"]', "groups names 'missing', which "),
        ('extras = ["cpu", "rocm"]', "extras names 'cpu', 'rocm', which "),
    ):
        root = _project(tmp_path / "q", tool, defined)
        with pytest.raises(SettingsError, match=message) as info:
            load_project(root)
        assert info.value.exit_code == 4
        assert "does not define" in info.value.message and info.value.hint


def test_groups_of_any_workspace_package_count(tmp_path: Path) -> None:
    root = tmp_path / "w"
    _workspace(root, ["packages/*"])
    (root / "packages/a/pyproject.toml").write_text(
        '[project]\nname = "a"\n\n[dependency-groups]\ntrain = []\n'
    )
    (root / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n\n[tool.reprise]\n'
        'command = "python t.py"\npackage = "a"\ngroups = ["train"]\n'
    )
    assert load_project(root).settings.groups == ("train",)
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace('["train"]', '["eval"]')
    )
    with pytest.raises(SettingsError, match=r"no package of the workspace at .* defines"):
        load_project(root)


def test_package_outside_a_workspace_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", 'package = "other"')
    with pytest.raises(SettingsError, match="is no uv workspace") as info:
        load_project(root)
    assert info.value.key == "package" and info.value.exit_code == 4
    assert load_project(_project(tmp_path / "q", 'package = "p"')).package is None
    with pytest.raises(SettingsError, match="is no uv workspace"):
        load_project(_project(tmp_path / "r", ""), {"REPRISE_PACKAGE": "other"})
