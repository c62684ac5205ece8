"""`reprise ci init` in a project whose runs/ git ignores: it says so, and prints the
`git add -f` that commits the workflow with the runs it replays."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from reprise.cli import cli

from ...projects import init_repo, tiny_project
from ...recordcraft import valid_record, write_run


def test_ci_init_warns_that_runs_are_ignored_and_prints_git_add_f(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tiny_project(tmp_path / "tiny")
    monkeypatch.chdir(root)
    init_repo(root)  # .gitignore holds runs/
    run = write_run(root / "runs", valid_record())
    result = CliRunner().invoke(
        cli, ["--project", str(root), "ci", "init", run.name, "--runs-dir", str(root / "runs")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ".github/workflows/reprise-replay.yml"
    assert "warning: git ignores " in result.stderr
    command = result.stderr.split("commit the workflow and the runs it replays: ")[1].strip()
    rel = run.relative_to(root).as_posix()
    assert command == f"git add -f .github/workflows/reprise-replay.yml {rel}"
    # and the printed command does add them
    (root / ".github/workflows/reprise-replay.yml").parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(shlex.split(command), cwd=root, check=True)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"{rel}/run.json" in staged and ".github/workflows/reprise-replay.yml" in staged
