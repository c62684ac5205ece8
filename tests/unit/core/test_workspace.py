from __future__ import annotations

import json

import pytest

from reprise.core.errors import LockError, ProjectError
from reprise.core.image import torch_base_mismatch
from reprise.core.workspace import (
    LockedPackage,
    Member,
    SyncOptions,
    link_files,
    linked,
    normalize,
    parse_lock,
)

LOCK = """version = 1
requires-python = ">=3.11"

[[package]]
name = "a"
version = "0.1.0"
source = { editable = "packages/a" }
dependencies = [{ name = "b" }, { name = "six" }]

[[package]]
name = "b"
version = "0.2.0"
source = { editable = "packages/b" }

[[package]]
name = "c"
version = "1.0.0"
source = { editable = "packages/c" }

[[package]]
name = "root"
version = "0"
source = { virtual = "." }

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
"""


def test_a_member_links_itself_and_the_members_it_depends_on() -> None:
    lock = parse_lock(LOCK)
    assert [p.name for p in linked(lock, "a")] == ["a", "b"]
    assert [p.name for p in linked(lock, None)] == ["a", "b", "c", "root"]
    with pytest.raises(LockError, match="'zz' is not a member"):
        linked(lock, "zz")


def test_link_files_make_scripts_dist_info_and_import_roots() -> None:
    members = [
        Member(
            "a",
            "packages/a",
            {"project": {"name": "a", "version": "0.1.0", "scripts": {"train-a": "a.cli:main"}}},
        ),
        Member("b", "packages/b", {"project": {"name": "b", "version": "0.2.0"}}),
        Member("root", "", {"project": {"name": "root"}}),
    ]
    lock = parse_lock(LOCK)
    files = link_files(members, linked(lock, None), python="/opt/venv/bin/python", code_dir="/c")
    script = files["bin/train-a"].decode()
    assert script.startswith("#!/opt/venv/bin/python\n")
    assert "from a.cli import main" in script and "sys.exit(main())" in script
    assert files["lib/a-0.1.0.dist-info/METADATA"].startswith(b"Metadata-Version: 2.1\nName: a\n")
    assert (
        b"[console_scripts]\ntrain-a = a.cli:main"
        in files["lib/a-0.1.0.dist-info/entry_points.txt"]
    )
    roots = json.loads(files["lib/reprise-project.json"])["import_roots"]
    # The virtual root is importable but installs nothing (as uv does not install it).
    assert roots == [
        "/c/src",
        "/c",
        "/c/packages/a/src",
        "/c/packages/a",
        "/c/packages/b/src",
        "/c/packages/b",
    ]
    assert not any(name.startswith("lib/root") for name in files)
    assert list(files) == sorted(files)  # deterministic order


def test_sync_flags_follow_uvs_defaults_unless_told() -> None:
    assert SyncOptions().flags() == ["--frozen", "--no-install-workspace"]
    flags = SyncOptions(
        package="a", groups=("train",), default_groups=False, extras=("cuda",)
    ).flags()
    assert flags == [
        "--frozen",
        "--no-install-workspace",
        "--package",
        "a",
        "--no-default-groups",
        "--group",
        "train",
        "--extra",
        "cuda",
    ]
    assert SyncOptions(all_packages=True).flags()[-1] == "--all-packages"


def _torch(version: str, *extra: str) -> dict[str, LockedPackage]:
    out = {"torch": LockedPackage("torch", version, "registry", None, ())}
    for name in extra:
        out[name] = LockedPackage(name, "12", "registry", None, ())
    return out


def test_a_torch_built_for_another_device_than_the_base_is_flagged() -> None:
    cuda_env = {"CUDA_VERSION": "12.4.1"}
    assert "CPU build) on a CUDA base" in (
        torch_base_mismatch(_torch("2.13.0+cpu"), cuda_env) or ""
    )
    cuda_lock = _torch("2.13.0", "nvidia-cublas-cu12")
    assert "on a base image without CUDA" in (torch_base_mismatch(cuda_lock, {}) or "")
    assert torch_base_mismatch(cuda_lock, cuda_env) is None
    assert torch_base_mismatch(_torch("2.13.0+cpu"), {}) is None
    assert torch_base_mismatch({}, cuda_env) is None


def _member(**project: object) -> list[Member]:
    return [Member("a", "packages/a", {"project": {"name": "a", "version": "0.1.0", **project}})]


@pytest.mark.parametrize(
    "script",
    ["../../../Dockerfile", "sub/dir", "", ".hidden", "-rf", "a b", "x\nRUN", "é"],
)
def test_a_script_must_be_a_plain_file_name(script: str) -> None:
    with pytest.raises(ProjectError) as info:
        link_files(_member(scripts={script: "a.cli:main"}), parse_lock(LOCK).values(), **_AT)
    assert info.value.exit_code == 4
    assert repr(script) in info.value.message
    assert "packages/a/pyproject.toml" in info.value.message


@pytest.mark.parametrize(
    "script",
    [
        "python",
        "python3",
        "python3.12",
        "pip",
        "pip3",
        "uv",
        "uvx",
        "activate",
        "activate.fish",
        "deactivate.bat",
        "pydoc.bat",
    ],
)
def test_a_script_may_not_shadow_the_venvs_own(script: str) -> None:
    for kind in ("scripts", "gui-scripts"):
        with pytest.raises(ProjectError, match="would take the place of"):
            link_files(_member(**{kind: {script: "a.cli:main"}}), parse_lock(LOCK).values(), **_AT)


@pytest.mark.parametrize(
    ("name", "version"), [("a/../../x", "0.1.0"), ("a", "../../x"), ("a", "1\nName: b"), ("a", "")]
)
def test_dist_info_name_and_version_are_checked(name: str, version: str) -> None:
    members = [Member(name, "packages/a", {"project": {"name": name, "version": version}})]
    locked = [LockedPackage(normalize(name), None, "editable", "packages/a", ())]
    if version == "":  # no version: the dist-info says 0+unknown
        assert "lib/a-0+unknown.dist-info/METADATA" in link_files(members, locked, **_AT)
        return
    with pytest.raises(ProjectError, match="cannot name a file"):
        link_files(members, locked, **_AT)


def test_tables_that_are_not_tables_are_project_errors() -> None:
    with pytest.raises(ProjectError, match=r"\[project.scripts\] in packages/a/pyproject.toml"):
        link_files(_member(scripts=["a"]), parse_lock(LOCK).values(), **_AT)
    with pytest.raises(ProjectError, match=r"\[project.entry-points\]"):
        link_files(_member(**{"entry-points": "x"}), parse_lock(LOCK).values(), **_AT)


_AT = {"python": "/opt/venv/bin/python", "code_dir": "/c"}
