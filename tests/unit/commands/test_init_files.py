"""`reprise init` checks every file it would write before it writes any, and never turns a
link into a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli

PYPROJECT = b'[project]\nname = "p"\nversion = "0"\n'


def _init(root: Path) -> Result:
    return CliRunner().invoke(cli, ["--project", str(root), "init"])


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_bytes(PYPROJECT)
    (root / "train.py").write_text("print('hi')\n")
    return root


def _refused(result: Result, *words: str) -> None:
    assert result.exit_code == 4, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_a_gitignore_folder_is_refused_before_pyproject_is_written(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / ".gitignore").mkdir()
    _refused(_init(root), ".gitignore is a folder: reprise init changes nothing")
    assert (root / "pyproject.toml").read_bytes() == PYPROJECT


def test_a_dangling_gitignore_link_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / ".gitignore").symlink_to(tmp_path / "nowhere")
    _refused(_init(root), "which does not exist")
    assert (root / "pyproject.toml").read_bytes() == PYPROJECT


def test_a_pyproject_symlink_is_not_replaced_by_a_file(tmp_path: Path) -> None:
    shared = _project(tmp_path / "shared")
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").symlink_to(shared / "pyproject.toml")
    _refused(_init(root), "is a symlink (to ", "would replace the link with a file")
    assert (root / "pyproject.toml").is_symlink()
    assert (shared / "pyproject.toml").read_bytes() == PYPROJECT
    assert not (root / ".gitignore").exists()


@pytest.mark.parametrize("ignores_runs", [True, False])
def test_a_gitignore_symlink_is_kept(tmp_path: Path, ignores_runs: bool) -> None:
    root = _project(tmp_path / "p")
    target = tmp_path / "shared.gitignore"
    target.write_text("runs/\n" if ignores_runs else "*.pyc\n")
    (root / ".gitignore").symlink_to(target)
    result = _init(root)
    assert (root / ".gitignore").is_symlink()
    if ignores_runs:  # nothing to write there: init goes ahead
        assert result.exit_code == 0, result.output
        assert b"[tool.reprise]" in (root / "pyproject.toml").read_bytes()
    else:
        _refused(result, f"add runs/ to {target}")
        assert (root / "pyproject.toml").read_bytes() == PYPROJECT
        assert target.read_text() == "*.pyc\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_gitignore_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / ".gitignore").write_text("x\n")
    (root / ".gitignore").chmod(0)
    _refused(_init(root), "unreadable")
    assert (root / "pyproject.toml").read_bytes() == PYPROJECT
