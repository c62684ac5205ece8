"""A project, or a job's outputs, made to break out: a console script named to overwrite the
build's Dockerfile or the venv's python, a package name that writes a RUN line, hard links the
job makes, a composed config that would crash or exhaust reprise diff. Each is refused (or
handled) with its exit code, against the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprise.commands import build as builder

from ..projects import init_repo, lock, write_tree
from ..unit.core.test_config import ALIAS_BOMB, DEEP
from .conftest import Host, run_cli

HATCH = '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'


def _dry_run(root: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    code, out, err = run_cli("--project", str(root), "build", "--dry-run", env=env)
    assert "Traceback" not in err, err
    return code, out, err


@pytest.mark.parametrize("script", ["../../../Dockerfile", "python", "python3.11", "activate"])
def test_a_console_script_cannot_overwrite_the_build_or_the_venv(
    host: Host, tmp_path: Path, script: str
) -> None:
    root = tmp_path / "p"
    write_tree(
        root,
        {
            "pyproject.toml": '[project]\nname = "p"\nversion = "0.1.0"\n'
            'requires-python = ">=3.11"\ndependencies = []\n'
            f'\n[project.scripts]\n"{script}" = "p.cli:main"\n'
            + HATCH
            + '\n[tool.reprise]\ncommand = "python -c pass"\n',
            "src/p/__init__.py": "",
            "src/p/cli.py": "def main() -> None:\n    pass\n",
            ".gitignore": "runs/\n",
        },
    )
    lock(root)
    init_repo(root)
    code, _, err = _dry_run(root)
    assert code == 4, err
    assert f"{script!r}" in err and "pyproject.toml" in err


def test_a_package_name_cannot_write_a_dockerfile_line(host: Host, tmp_path: Path) -> None:
    hostile = 'pkg-a\\"\\nRUN touch /pwned #'
    root = tmp_path / "ws"
    write_tree(
        root,
        {
            "pyproject.toml": '[tool.uv.workspace]\nmembers = ["packages/*"]\n'
            f'\n[tool.reprise]\ncommand = "python -c pass"\npackage = "{hostile}"\n',
            "packages/pkg-a/pyproject.toml": '[project]\nname = "pkg-a"\nversion = "0.1.0"\n'
            'requires-python = ">=3.11"\ndependencies = []\n\n[tool.uv]\npackage = false\n',
            ".gitignore": "runs/\n",
        },
    )
    lock(root)
    init_repo(root)
    code, _, err = _dry_run(root)
    assert code == 4 and "is not a package name" in err, err
    code, out, err = _dry_run(root, {"REPRISE_PACKAGE": "pkg-a"})
    assert code == 0, err
    assert "RUN touch" not in out and 'org.reprise.project="pkg-a"' in out


def test_hard_linked_outputs_export_import_and_compare(
    example: Path, image: builder.BuildResult, host: Host, tmp_path: Path
) -> None:
    script = """
import os
open("/workspace/run/outputs/a.txt", "w").write("same\\n")
os.link("/workspace/run/outputs/a.txt", "/workspace/run/outputs/b.txt")
open("local.txt", "w").write("here\\n")
os.link("local.txt", "local-too.txt")
open("/workspace/run/outputs/plain.txt", "w").write("plain\\n")
"""
    env = {"REPRISE_RUNS_DIR": str(host.runs)}
    code, out, err = run_cli(
        "--project", str(example), "run", "--json", "--", "python", "-c", script, env=env
    )
    assert code == 0, err
    run_dir = host.runs / "spiral" / json.loads(out)["run_id"]
    manifest = {e["path"]: e for e in json.loads((run_dir / "manifest.json").read_text())["files"]}
    for path in ("outputs/a.txt", "outputs/b.txt", "work/local.txt", "work/local-too.txt"):
        assert manifest[path]["kind"] == "hardlink", manifest[path]
    assert "kind" not in manifest["outputs/plain.txt"]
    bundle = host.runs.parent / "links.reprise"
    code, _, err = run_cli(
        "--project", str(example), "bundle", "export", str(run_dir), "-o", str(bundle),
        "--with-outputs",
    )  # fmt: skip
    assert code == 0, err
    assert "4 hard-linked outputs are named in the manifest, not bundled" in err
    other = tmp_path / "other-runs"
    code, out, err = run_cli("bundle", "import", str(bundle), "--runs-dir", str(other))
    assert code == 0, err
    imported = other / "spiral" / run_dir.name
    assert (imported / "outputs/plain.txt").read_text() == "plain\n"
    assert not (imported / "outputs/a.txt").exists()
    code, out, err = run_cli("diff", str(run_dir), str(imported), "--json")
    assert code == 0, err
    assert json.loads(out)["outputs"]["identical"]
    bundle.unlink()


@pytest.mark.parametrize("config", [DEEP, ALIAS_BOMB], ids=["deep", "alias-bomb"])
def test_diff_of_a_hostile_composed_config_compares_it_by_hash(
    example: Path, image: builder.BuildResult, host: Host, config: str
) -> None:
    """As a Hydra job's composed config becomes the run's config.yaml."""
    env = {"REPRISE_RUNS_DIR": str(host.runs)}
    runs = []
    for _ in range(2):
        code, out, err = run_cli(
            "--project", str(example), "run", "--json", "--", "python", "-c", "pass", env=env
        )
        assert code == 0, err
        runs.append(host.runs / "spiral" / json.loads(out)["run_id"])
    (runs[1] / "config.yaml").write_text(config)
    code, out, err = run_cli("diff", str(runs[0]), str(runs[1]), "--runs-dir", str(host.runs))
    assert code in (0, 6) and "Traceback" not in err, (code, err)
    assert "note: config compared by hash only:" in out
