"""`reprise init`: the section it writes for what the project runs, the bytes it keeps, the steps
it prints and the projects it sends to uv first."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.core.errors import ProjectError
from reprise.core.settings import DEFAULT_BASE_IMAGE

CRLF_PYPROJECT = (
    b'[project]\r\nname = "caf\xc3\xa9"\r\nversion = "0.1.0"\r\n'
    b"# a comment, kept as it is   \r\n"
    b'dependencies = [\r\n    "numpy>=2",\r\n]\r\n\r\n'
    b"[tool.ruff]\r\nline-length = 100\r\n"
)
STEPS = [
    'git add pyproject.toml .gitignore && git commit -m "reprise settings"',
    "reprise build --dry-run",
    "reprise run",
]


def _init(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(root), "init", *args], catch_exceptions=False)


def _project(root: Path, pyproject: str | bytes = '[project]\nname = "p"\nversion = "0"\n') -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = pyproject.encode() if isinstance(pyproject, str) else pyproject
    (root / "pyproject.toml").write_bytes(data)
    (root / "uv.lock").write_text("version = 1\n")
    return root


def _section(root: Path) -> dict[str, Any]:
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    section: dict[str, Any] = data["tool"]["reprise"]
    return section


def _steps(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[1] == "next steps:"
    return [line.strip() for line in lines[2:]]


def test_crlf_pyproject_keeps_every_byte_and_gets_a_crlf_section(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", CRLF_PYPROJECT)
    (root / "pyproject.toml").chmod(0o664)
    (root / ".gitignore").write_bytes(b"__pycache__/\r\n*.pyc")
    (root / "train.py").write_text("print('hi')\n")
    result = _init(root)
    assert result.exit_code == 0, result.stderr
    new = (root / "pyproject.toml").read_bytes()
    assert new[: len(CRLF_PYPROJECT)] == CRLF_PYPROJECT
    added = new[len(CRLF_PYPROJECT) :]
    assert added.startswith(b"\r\n[tool.reprise]\r\n")
    assert added.endswith(b"\r\n") and b"\n" not in added.replace(b"\r\n", b"")
    assert _section(root)["command"] == "python train.py"
    assert _section(root)["base-image"] == DEFAULT_BASE_IMAGE
    assert b'# experiment = "caf\xc3\xa9"\r\n' in added
    assert (root / "pyproject.toml").stat().st_mode & 0o777 == 0o664
    # .gitignore: its own bytes, a line ending where it had none, then runs/ in CRLF.
    assert (root / ".gitignore").read_bytes() == b"__pycache__/\r\n*.pyc\r\nruns/\r\n"


def test_lf_pyproject_without_final_newline(tmp_path: Path) -> None:
    original = b'[project]\nname = "p"\nversion = "0"'
    root = _project(tmp_path / "p", original)
    assert _init(root).exit_code == 0
    new = (root / "pyproject.toml").read_bytes()
    assert new.startswith(original + b"\n\n[tool.reprise]\n")
    assert b"\r" not in new
    assert (root / ".gitignore").read_bytes() == b"runs/\n"


@pytest.mark.parametrize("line", ["runs/", "/runs", "runs"])
def test_gitignore_that_already_ignores_runs_is_left_alone(tmp_path: Path, line: str) -> None:
    root = _project(tmp_path / "p")
    before = f"*.pyc\n{line}\n".encode()
    (root / ".gitignore").write_bytes(before)
    result = _init(root)
    assert result.exit_code == 0
    assert (root / ".gitignore").read_bytes() == before
    assert ".gitignore already ignores runs/" in result.stderr


def test_command_from_the_first_project_script(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "p",
        '[project]\nname = "p"\nversion = "0"\n\n[project.scripts]\n'
        'fit = "p.cli:fit"\nevaluate = "p.cli:evaluate"\n\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
    )
    (root / "train.py").write_text("print('not this one')\n")
    result = _init(root)
    assert result.exit_code == 0
    section = _section(root)
    assert section["command"] == "fit"
    assert "config" not in section
    assert "command: fit (from the first entry of [project.scripts])" in result.stderr
    assert "config: none" in result.stderr
    assert "only on PATH when uv installs the project" not in result.stderr


def test_a_script_of_an_unpackaged_project_is_flagged(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "p", '[project]\nname = "p"\nversion = "0"\n[project.scripts]\nfit = "p:m"\n'
    )
    result = _init(root)
    assert _section(root)["command"] == "fit"
    assert "only on PATH when uv installs the project" in result.stderr


@pytest.mark.parametrize(
    ("files", "command"),
    [
        (["train.py"], "python train.py"),
        (["main.py"], "python main.py"),
        (["main.py", "train.py"], "python train.py"),
    ],
)
def test_command_from_a_root_script(tmp_path: Path, files: list[str], command: str) -> None:
    root = _project(tmp_path / "p")
    for name in files:
        (root / name).write_text("print('hi')\n")
    result = _init(root)
    assert result.exit_code == 0
    assert _section(root)["command"] == command
    assert f"command: {command} (from {files[-1] if len(files) == 1 else 'train.py'}" in (
        result.stderr
    )


@pytest.mark.parametrize("config", ["config.yaml", "config.yml"])
def test_config_only_when_the_file_exists(tmp_path: Path, config: str) -> None:
    root = _project(tmp_path / "p")
    (root / "train.py").write_text("print('hi')\n")
    (root / config).write_text("lr: 0.1\n")
    result = _init(root)
    assert _section(root)["config"] == config
    assert f"config: {config}" in result.stderr


def test_no_config_file_no_config_key(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "train.py").write_text("print('hi')\n")
    _init(root)
    assert "config" not in _section(root)
    assert '# config = "config.yaml"' in (root / "pyproject.toml").read_text()


HYDRA_APP = """\
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def app(cfg: DictConfig) -> None:
    print(cfg.lr)


if __name__ == "__main__":
    app()
"""


def test_hydra_app_gets_its_file_and_no_config(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text("lr: 0.1\n")
    (root / "config.yaml").write_text("not: hydra's\n")
    (root / "helpers.py").write_text("import os\n")
    (root / "my_app.py").write_text(HYDRA_APP)
    result = _init(root)
    assert result.exit_code == 0
    section = _section(root)
    assert section["command"] == "python my_app.py"
    assert "config" not in section
    assert "my_app.py is a Hydra app and reads its own conf/" in result.stderr


def test_train_py_that_is_a_hydra_app_has_no_config(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text("lr: 0.1\n")
    (root / "config.yaml").write_text("lr: 0.2\n")
    (root / "train.py").write_text(HYDRA_APP)
    _init(root)
    assert _section(root) == {
        "command": "python train.py",
        "base-image": DEFAULT_BASE_IMAGE,
        "runs-dir": "runs",
    }


def test_conf_folder_without_a_hydra_import_is_not_a_hydra_app(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text("lr: 0.1\n")
    (root / "run_it.py").write_text("import yaml\n")
    result = _init(root)
    assert "command" not in _section(root)
    assert "no command found" in result.stderr


def test_nothing_found_writes_a_commented_command_with_a_todo(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    result = _init(root)
    assert result.exit_code == 0
    text = (root / "pyproject.toml").read_text()
    assert "command" not in _section(root)
    assert "# TODO: reprise found no [project.scripts] entry, train.py, main.py or Hydra app." in (
        text
    )
    assert '\n# command = "python train.py"\n' in text
    assert "no command found" in result.stderr and "see the TODO there" in result.stderr


def test_prints_the_path_then_the_next_three_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "p")
    monkeypatch.chdir(root)
    result = _init(root)
    assert result.stdout.splitlines()[0] == str(root / "pyproject.toml")
    assert _steps(result.stdout) == STEPS


def test_without_uv_lock_the_steps_start_with_uv_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "p")
    (root / "uv.lock").unlink()
    monkeypatch.chdir(root)
    result = _init(root)
    assert result.exit_code == 0 and "[tool.reprise]" in (root / "pyproject.toml").read_text()
    assert _steps(result.stdout) == [
        "uv lock",
        'git add pyproject.toml .gitignore uv.lock && git commit -m "reprise settings"',
        "reprise build --dry-run",
        "reprise run",
    ]
    assert "no uv.lock yet" in result.stderr


def test_from_another_folder_the_steps_start_with_cd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "p")
    monkeypatch.chdir(tmp_path)
    assert _steps(_init(root).stdout) == [f"cd {root}", *STEPS]


def test_requirements_only_folder_is_sent_to_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "requirements.txt").write_text("numpy\n")
    (root / "requirements-dev.txt").write_text("pytest\n")
    for result in (_init(root), _run_in(root, monkeypatch)):
        assert result.exit_code == ProjectError.exit_code != 0
        assert result.stdout == ""
        assert "has requirements.txt but no pyproject.toml" in result.stderr
        assert (
            "hint: migrate to uv: uv init --bare && uv add -r requirements.txt && reprise init"
            in result.stderr
        )
        assert "requirements-dev.txt" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["requirements-dev.txt", "requirements.txt"]


def _run_in(root: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.chdir(root)
    return CliRunner().invoke(cli, ["init"], catch_exceptions=False)


def test_other_requirements_file_names_are_used_as_they_are(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "requirements-gpu.txt").write_text("torch\n")
    result = _init(root)
    assert result.exit_code == ProjectError.exit_code
    assert "uv init --bare && uv add -r requirements-gpu.txt && reprise init" in result.stderr


def test_poetry_project_is_sent_to_migrate_to_uv(tmp_path: Path) -> None:
    original = b'[tool.poetry]\nname = "p"\nversion = "0"\n\n[tool.poetry.dependencies]\npython = "^3.11"\n'
    root = _project(tmp_path / "p", original)
    result = _init(root)
    assert result.exit_code == ProjectError.exit_code
    assert "is a Poetry project" in result.stderr
    assert "hint: migrate it to uv: uvx migrate-to-uv && uv lock && reprise init" in result.stderr
    assert (root / "pyproject.toml").read_bytes() == original
    assert not (root / ".gitignore").exists()


def test_pyproject_without_project_table(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "[tool.black]\nline-length = 88\n")
    result = _init(root)
    assert result.exit_code == ProjectError.exit_code and "has no [project] table" in result.stderr


def test_existing_section_needs_force(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    _init(root)
    before = (root / "pyproject.toml").read_bytes()
    result = _init(root)
    assert (
        result.exit_code == ProjectError.exit_code
        and "already has a [tool.reprise] section" in result.stderr
    )
    assert (root / "pyproject.toml").read_bytes() == before


def test_force_replaces_the_section_in_place_and_keeps_the_rest(tmp_path: Path) -> None:
    head = b'[project]\r\nname = "p"\r\nversion = "0"\r\n\r\n'
    old = (
        b'[tool.reprise]\r\ncommand = "python old.py"\r\nconfig = "gone.yaml"\r\n'
        b'runs-dir = "elsewhere"\r\n# a trailing comment of the section\r\n\r\n'
        b'[tool.reprise.prepare]\r\ncommand = "python fetch.py"\r\n\r\n'
    )
    tail = b"# ruff: the linter\r\n[tool.ruff]\r\nline-length = 100\r\n"
    root = _project(tmp_path / "p", head + old + tail)
    (root / "main.py").write_text("print('hi')\n")
    result = _init(root, "--force")
    assert result.exit_code == 0, result.stderr
    new = (root / "pyproject.toml").read_bytes()
    assert new.startswith(head + b"[tool.reprise]\r\n")
    assert new.endswith(
        b'# prepare = { command = "python download.py", data = "downloads" }\r\n\r\n' + tail
    )
    assert b"\n" not in new.replace(b"\r\n", b"")
    assert new.count(b"[tool.reprise") == 1 and b"old.py" not in new
    assert _section(root)["command"] == "python main.py"
    assert _section(root)["runs-dir"] == "runs"
    assert "config" not in _section(root)
    # Again: the same bytes.
    assert _init(root, "--force").exit_code == 0
    assert (root / "pyproject.toml").read_bytes() == new


def test_force_keeps_a_comment_block_that_describes_the_next_table(tmp_path: Path) -> None:
    head = b'[project]\nname = "p"\nversion = "0"\n\n'
    tail = b"# Lint settings.\n# Two lines of them.\n[tool.ruff]\nline-length = 100\n"
    root = _project(tmp_path / "p", head + b'[tool.reprise]\ncommand = "x"\n\n' + tail)
    assert _init(root, "--force").exit_code == 0
    new = (root / "pyproject.toml").read_bytes()
    assert new.startswith(head + b"[tool.reprise]\n")
    assert new.endswith(
        b'# prepare = { command = "python download.py", data = "downloads" }\n\n' + tail
    )


def test_force_without_a_section_appends_one(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    assert _init(root, "--force").exit_code == 0
    assert (root / "pyproject.toml").read_text().count("[tool.reprise]") == 1


def test_the_written_section_loads_as_settings(tmp_path: Path) -> None:
    from reprise.core.settings import load_settings

    root = _project(tmp_path / "p")
    (root / "train.py").write_text("print('hi')\n")
    (root / "config.yaml").write_text("lr: 0.1\n")
    _init(root)
    data = tomllib.loads((root / "pyproject.toml").read_text())
    settings = load_settings(root, data, {})
    assert settings.command == ("python", "train.py")
    assert settings.config == root / "config.yaml"
    assert os.fspath(settings.runs_dir) == os.fspath(root / "runs")


def test_workspace_member_finds_the_lock_at_the_workspace_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    _project(
        ws, '[project]\nname = "ws"\nversion = "0"\n[tool.uv.workspace]\nmembers = ["pkgs/*"]\n'
    )
    member = _project(ws / "pkgs" / "trainer")
    (member / "uv.lock").unlink()
    (member / "train.py").write_text("print('hi')\n")
    monkeypatch.chdir(member)
    assert _steps(_init(member).stdout) == STEPS
    (ws / "uv.lock").unlink()
    assert _steps(_init(member, "--force").stdout) == [
        "uv lock",
        'git add pyproject.toml .gitignore ../../uv.lock && git commit -m "reprise settings"',
        "reprise build --dry-run",
        "reprise run",
    ]
