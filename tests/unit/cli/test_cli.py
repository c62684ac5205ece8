"""The CLI's answers to bad input: one paragraph on stderr, exit 2 for bad usage and 4 for a
project not usable as it is, nothing half-made."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reprise.cli import cli

from ...projects import commit_all, init_repo, tiny_project


def _invoke(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--project", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tiny_project(tmp_path / "proj")
    init_repo(root)
    return root


def _no_runs(root: Path) -> None:
    assert not (root / "runs").exists() or not any((root / "runs").rglob("run.json"))


def test_help_lists_commands_with_examples() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "run", "init"):
        assert command in result.stdout
    assert "Examples:" in result.stdout
    run_help = CliRunner().invoke(cli, ["run", "--help"])
    assert "reprise run optim.lr=0.01" in run_help.stdout


def test_malformed_yaml(project: Path) -> None:
    (project / "config.yaml").write_text("a: [1, 2\n")
    commit_all(project)
    code, out, err = _invoke(project, "run")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and "not valid YAML at line" in err
    assert "Traceback" not in err
    _no_runs(project)


def test_unknown_override_key(project: Path) -> None:
    code, _, err = _invoke(project, "run", "lrr=0.2")
    assert code == 2
    assert "unknown config key 'lrr'" in err and "did you mean lr?" in err
    _no_runs(project)


def test_missing_lock(project: Path) -> None:
    (project / "uv.lock").unlink()
    commit_all(project)
    code, _, err = _invoke(project, "run")
    assert code == 4
    assert "no uv.lock" in err and "uv lock" in err
    _no_runs(project)


def test_stale_lock(project: Path) -> None:
    text = (
        (project / "pyproject.toml")
        .read_text()
        .replace("dependencies = []", 'dependencies = ["six"]')
    )
    (project / "pyproject.toml").write_text(text)
    commit_all(project)
    code, _, err = _invoke(project, "build")
    assert code == 4
    assert "uv.lock is out of date with pyproject.toml" in err
    _no_runs(project)


def test_not_a_git_repository(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "nogit")
    code, _, err = _invoke(root, "run")
    assert code == 4
    assert "not inside a git repository" in err and "git init" in err
    _no_runs(root)


def test_dirty_tree_is_refused(project: Path) -> None:
    (project / "train.py").write_text("print('changed')\n")
    code, _, err = _invoke(project, "run")
    assert code == 4
    assert "uncommitted changes (train.py)" in err and "--allow-dirty" in err
    _no_runs(project)


def test_no_pyproject(tmp_path: Path) -> None:
    code, _, err = _invoke(tmp_path, "run")
    assert code == 4 and "no pyproject.toml" in err


def test_bad_gpus_flag(project: Path) -> None:
    code, _, err = _invoke(project, "run", "--gpus", "lots")
    assert code == 2 and "--gpus must be 'all' or a positive count" in err


def test_ctrl_c_while_reprise_is_still_importing_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entry point catches an interrupt that lands before the CLI's own handler exists."""
    import reprise.__main__ as entry
    import reprise.cli

    def interrupted_import(argv: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(reprise.cli, "main", interrupted_import)
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "reprise: interrupted\n"
