"""[tool.reprise] package and [project] name: PEP 508 names, the checked value used."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import ProjectError, SettingsError
from reprise.core.settings import load_settings

ROOT = Path("/proj")
INJECTION = 'pkg-a"\nRUN touch /pwned #'


def _virtual_root(package: object) -> dict[str, object]:
    return {
        "tool": {
            "uv": {"workspace": {"members": ["packages/*"]}},
            "reprise": {"command": "python train.py", "package": package},
        }
    }


@pytest.mark.parametrize("bad", [INJECTION, "-a", "a-", "a b", "a/b", "", "é", 3])
def test_package_must_be_a_pep508_name(bad: object) -> None:
    with pytest.raises(SettingsError, match="is not a package name") as info:
        load_settings(ROOT, _virtual_root(bad), {})
    assert info.value.exit_code == 4 and info.value.key == "package"
    if isinstance(bad, str) and bad:  # an empty variable is unset
        with pytest.raises(SettingsError, match="is not a package name"):
            load_settings(ROOT, _virtual_root("pkg-a"), {"REPRISE_PACKAGE": bad})


def test_the_name_is_the_checked_package_the_environment_may_override() -> None:
    """The hostile table value is never used: REPRISE_PACKAGE replaces it, and the name
    follows the value that was checked."""
    s = load_settings(ROOT, _virtual_root(INJECTION), {"REPRISE_PACKAGE": "pkg-a"})
    assert s.project_name == s.package == "pkg-a"
    s = load_settings(ROOT, _virtual_root("Pkg_B.x"), {})
    assert s.project_name == "Pkg_B.x"


@pytest.mark.parametrize("bad", [INJECTION, "a b", "x\n", "-x"])
def test_project_name_must_be_a_pep508_name(bad: str) -> None:
    pyproject = {"project": {"name": bad}, "tool": {"reprise": {"command": "x"}}}
    with pytest.raises(ProjectError, match="is not a valid package name"):
        load_settings(ROOT, pyproject, {})


def test_a_project_table_that_is_not_a_table() -> None:
    with pytest.raises(ProjectError, match="no \\[project\\] name"):
        load_settings(ROOT, {"project": "x", "tool": {"reprise": {"command": "x"}}}, {})


def test_volatile_patterns_are_bounded() -> None:
    def with_volatile(volatile: list[str]) -> dict[str, object]:
        return {
            "project": {"name": "a"},
            "tool": {"reprise": {"command": "x", "volatile": volatile}},
        }

    assert load_settings(ROOT, with_volatile(["o/*"] * 32), {}).volatile == ("o/*",) * 32
    for volatile in (["o/*"] * 33, ["o" * 257]):
        with pytest.raises(
            SettingsError, match="volatile takes at most 32 patterns of at most 256"
        ):
            load_settings(ROOT, with_volatile(volatile), {})
