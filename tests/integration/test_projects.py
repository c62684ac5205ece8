"""Projects as people write them, each a fresh git repository run for real: a uv workspace
with a stale member lock, a Hydra app, a src-layout package run by its console script, relative
writes, a prepare step that downloads, a dependency group, a run with no outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from reprise.cli import cli

from ..projects import commit_all, init_repo, lock, write_tree

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{deps}]
{extra}
"""


def _cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--project", str(root), *args])


def _run(root: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = _cli(root, "run", "--json", *args)
    # (the job's own output, tracebacks included, is on stderr; reprise itself raised nothing)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def _run_dir(root: Path, record: dict[str, Any]) -> Path:
    return root / "runs" / str(record["experiment"]) / str(record["run_id"])


def _project(
    root: Path,
    name: str,
    files: dict[str, str],
    *,
    deps: str = "",
    extra: str = "",
    offline: bool = True,
) -> Path:
    write_tree(
        root,
        {
            "pyproject.toml": PYPROJECT.format(name=name, deps=deps, extra=extra),
            ".gitignore": "runs/\n",
            **files,
        },
    )
    lock(root, offline=offline)
    init_repo(root)
    return root


STALE_MEMBER_LOCK = """version = 1
requires-python = ">=3.11"

[[package]]
name = "a"
version = "0.1.0"
source = { editable = "." }
"""


def test_a_workspace_member_with_a_stale_lock_runs_its_console_script(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write_tree(
        root,
        {
            "pyproject.toml": '[project]\nname = "root"\nversion = "0"\nrequires-python = ">=3.11"\n'
            '\n[tool.uv.workspace]\nmembers = ["packages/*"]\n',
            ".gitignore": "runs/\n",
            "packages/b/pyproject.toml": PYPROJECT.format(name="b", deps="", extra=HATCH),
            "packages/b/src/b/__init__.py": "WORD = 'from b'\n",
            "packages/a/src/a/__init__.py": "",
            "packages/a/src/a/cli.py": "import six, b\n\ndef main() -> None:\n    print('a says', b.WORD, six.PY3)\n",
            "packages/a/pyproject.toml": PYPROJECT.format(
                name="a", deps='"b", "six"', extra=SCRIPT + HATCH + B_SOURCE
            )
            + '\n[tool.reprise]\ncommand = "train-a"\n',
            # The member's own lock, from before it joined the workspace and declared six:
            # uv ignores it, and so must reprise (it once installed it, and six was missing).
            "packages/a/uv.lock": STALE_MEMBER_LOCK,
        },
    )
    lock(root, offline=False)
    init_repo(root)
    member = root / "packages" / "a"
    result, record = _run(member)
    assert result.exit_code == 0, result.stderr
    assert "packages/a/uv.lock is ignored: uv uses the workspace's lock" in result.stderr
    log = (_run_dir(member, record) / "logs/run.log").read_text()
    assert "a says from b True" in log
    assert record["code"]["workdir"] == "packages/a"
    result, record = _run(
        member,
        "--",
        "python",
        "-c",
        "import importlib.metadata as m; print(m.version('a'), m.version('b'))",
    )
    assert result.exit_code == 0, result.stderr
    assert "0.1.0 0.1.0" in (_run_dir(member, record) / "logs/run.log").read_text()


SCRIPT = '\n[project.scripts]\ntrain-a = "a.cli:main"\n'
HATCH = '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
B_SOURCE = "\n[tool.uv.sources]\nb = { workspace = true }\n"


def test_a_src_layout_package_runs_by_its_script_and_writes_relative_paths(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "pkg",
        "pkg",
        {
            "src/pkg/__init__.py": "",
            "src/pkg/cli.py": (
                "import os\n\ndef main() -> None:\n"
                "    os.makedirs('results', exist_ok=True)\n"
                "    open('results/score.txt', 'w').write('0.93\\n')\n"
                "    print('scored')\n"
            ),
        },
        extra='\n[project.scripts]\ntrain-pkg = "pkg.cli:main"\n'
        + HATCH
        + '\n[tool.reprise]\ncommand = "train-pkg"\n',
    )
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    run_dir = _run_dir(root, record)
    assert (run_dir / "work/results/score.txt").read_text() == "0.93\n"
    paths = [f["path"] for f in json.loads((run_dir / "manifest.json").read_text())["files"]]
    assert "work/results/score.txt" in paths
    assert not (root / "results").exists()  # the code at the commit is never written
    again = _cli(root, "reproduce", record["run_id"], "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["verdict"] == "identical"
    result, record = _run(root, "--", "python", "-m", "pkg.cli")
    assert result.exit_code == 0, result.stderr


HYDRA_APP = """import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    with open("read.txt", "w") as fh:
        fh.write(f"lr={cfg.lr} epochs={cfg.epochs}\\n")
    print("trained with lr", cfg.lr)


if __name__ == "__main__":
    main()
"""


def test_a_hydra_app_gets_its_overrides_and_reproduces(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "hyd",
        "hyd",
        {"train.py": HYDRA_APP, "conf/config.yaml": "lr: 0.1\nepochs: 3\n"},
        deps='"hydra-core==1.3.2"',
        extra='\n[tool.reprise]\ncommand = "python train.py"\n',
        offline=False,
    )
    result, record = _run(root, "lr=0.5")
    assert result.exit_code == 0, result.stderr
    run_dir = _run_dir(root, record)
    assert (run_dir / "work/read.txt").read_text() == "lr=0.5 epochs=3\n"
    config = record["config"]
    assert (
        config["delivery"] == "hydra" and config["overrides"] == ["lr=0.5"] and config["composed"]
    )
    assert "lr: 0.5" in (run_dir / "config.yaml").read_text()  # the config the job used
    assert "outputs/hydra/.hydra/config.yaml" in [
        f["path"] for f in json.loads((run_dir / "manifest.json").read_text())["files"]
    ]
    again = _cli(root, "reproduce", record["run_id"], "--json")
    assert again.exit_code == 0, again.stderr
    verdict = json.loads(again.stdout)
    assert verdict["verdict"] == "identical"
    assert verdict["files"]["volatile"] == ["outputs/hydra/train.log"]


def test_overrides_a_job_never_reads_are_called_out(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "plain",
        "plain",
        {
            "config.yaml": "lr: 0.1\n",
            "train.py": "print('I read no config')\n",
            "reads.py": "import os\nprint(open(os.environ['REPRISE_CONFIG']).read())\n",
        },
        extra='\n[tool.reprise]\ncommand = "python train.py"\nconfig = "config.yaml"\n',
    )
    result, record = _run(root, "lr=0.5")
    assert result.exit_code == 0, result.stderr
    assert record["config"]["read"] is False
    assert (
        "overrides were given, but no Python process of the job opened $REPRISE_CONFIG"
        in result.stderr
    )
    assert any("they did not reach it (lr=0.5)" in w for w in record["warnings"])
    result, record = _run(root, "lr=0.5", "--", "python", "reads.py")
    assert record["config"]["read"] is True and "warnings" not in record


DOWNLOAD = """import os, urllib.request
data = urllib.request.urlopen("https://pypi.org/simple/six/", timeout=30).read()
open(os.path.join(os.environ["REPRISE_PREPARE_DIR"], "six.html"), "wb").write(data)
print("downloaded", len(data), "bytes")
"""


def test_a_prepare_step_downloads_and_the_hermetic_run_reads_it(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "dl",
        "dl",
        {
            "download.py": DOWNLOAD,
            "train.py": (
                "import os\nfrom reprise_runtime import outputs_dir\n"
                "data = open('/workspace/data/downloads/six.html', 'rb').read()\n"
                "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
                "(d / 'links.txt').write_text(str(data.count(b'<a ')))\n"
            ),
            "fetch.py": "import urllib.request\nurllib.request.urlopen('https://pypi.org/simple/six/', timeout=10)\n",
        },
        extra='\n[tool.reprise]\ncommand = "python train.py"\nprepare = { command = "python download.py", data = "downloads" }\n',
    )
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    assert "prepare: downloaded" in result.stderr
    data = record["data"]["downloads"]
    assert data["prepared"]["command"] == ["python", "download.py"] and data["files"] == 1
    again = _cli(root, "reproduce", record["run_id"], "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["verdict"] == "identical"
    assert "prepare: downloaded" not in again.stderr  # kept: the same command, image and code
    for kept in (root / "runs" / ".data").iterdir():
        shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
    refused = _cli(root, "reproduce", record["run_id"])  # a rerun never goes online unasked
    assert refused.exit_code == 2 and "--allow-prepare" in refused.stderr, refused.stderr
    allowed = _cli(root, "reproduce", record["run_id"], "--allow-prepare", "--json")
    assert allowed.exit_code == 0, allowed.stderr
    assert "prepare: downloaded" in allowed.stderr
    assert json.loads(allowed.stdout)["verdict"] == "identical"
    failed, record = _run(root, "--", "python", "fetch.py")
    assert failed.exit_code == 1
    assert record["hint"] and "no network" in record["hint"] and "prepare" in record["hint"]
    assert "hint: " in (_run_dir(root, record) / "FAILED").read_text()


def test_the_dev_group_is_installed_as_uv_does(tmp_path: Path) -> None:
    command = 'command = "python -c \\"import six; print(six.__name__)\\""\n'
    extra = '\n[dependency-groups]\ndev = ["six"]\n\n[tool.reprise]\n' + command
    root = _project(tmp_path / "grp", "grp", {}, extra=extra, offline=False)
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text() + "default-groups = false\n"
    )
    commit_all(root, "no default groups")
    failed, record = _run(root)
    assert failed.exit_code == 1
    assert "ModuleNotFoundError: No module named 'six'" in record["reason"]
    assert "groups" in record["hint"]


def test_a_run_with_no_outputs_proves_nothing(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "empty",
        "empty",
        {"train.py": "print('nothing written')\n"},
        extra='\n[tool.reprise]\ncommand = "python train.py"\n',
    )
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    again = _cli(root, "reproduce", record["run_id"])
    assert again.exit_code == 6, again.stderr
    assert "verdict  nothing compared" in again.stdout
    card = (_run_dir(root, record) / "model_card.md").read_text()
    assert "nothing was compared" in card and "reproduced bit-for-bit" not in card


def test_an_incomplete_manifest_whose_files_agree_is_inconclusive(tmp_path: Path) -> None:
    """The original's manifest stands for one that hit its entry limit (a million entries
    are too many to make here): it lists one of the two outputs and says it is incomplete."""
    script = (
        "from reprise_runtime import outputs_dir\n"
        "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'a.txt').write_text('a\\n'); (d / 'b.txt').write_text('b\\n')\n"
    )
    root = _project(
        tmp_path / "cut",
        "cut",
        {"train.py": script},
        extra='\n[tool.reprise]\ncommand = "python train.py"\n',
    )
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    manifest_path = _run_dir(root, record) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "outputs/b.txt"]
    manifest.update(complete=False, note="more than 1 entries")
    manifest_path.write_text(json.dumps(manifest))
    again = _cli(root, "reproduce", record["run_id"], "--json")
    assert again.exit_code == 7, again.stderr
    verdict = json.loads(again.stdout)
    assert verdict["verdict"] == "inconclusive" and verdict["files"]["extra"] == ["outputs/b.txt"]
    assert "original: more than 1 entries" in verdict["files"]["incomplete"]
    assert verdict["details"][-1].endswith(
        "what an incomplete manifest left out was never compared"
    )
    human = _cli(root, "reproduce", record["run_id"])
    assert (
        human.exit_code == 7 and "verdict  inconclusive: a manifest is incomplete" in human.stdout
    )
    card = (_run_dir(root, record) / "model_card.md").read_text()
    assert "inconclusive" in card and "reproduced bit-for-bit" not in card


def test_volatile_files_are_recorded_not_compared_and_text_shows_its_first_difference(
    tmp_path: Path,
) -> None:
    script = (
        "import time\nfrom reprise_runtime import outputs_dir\n"
        "d = outputs_dir(); d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'result.txt').write_text('accuracy 0.9\\n')\n"
        "(d / 'stamp.log').write_text(f'started {time.time()}\\n')\n"
        "(d / 'report.txt').write_text('same line\\n' + ('x' if time.time_ns() % 2 else 'y') * 0 + f'at {time.time_ns()}\\n')\n"
    )
    root = _project(
        tmp_path / "vol",
        "vol",
        {"train.py": script},
        extra='\n[tool.reprise]\ncommand = "python train.py"\nvolatile = ["outputs/*.log"]\n',
    )
    result, record = _run(root)
    assert result.exit_code == 0, result.stderr
    again = _cli(root, "reproduce", record["run_id"], "--json")
    verdict = json.loads(again.stdout)
    assert again.exit_code == 5 and verdict["verdict"] == "diverged"
    assert verdict["files"]["volatile"] == ["outputs/stamp.log"]
    assert verdict["files"]["changed"] == ["outputs/report.txt"]
    assert any(
        line.startswith("outputs/report.txt: first difference at line 2: 'at ")
        for line in verdict["details"]
    )


def test_a_crlf_project_through_init_builds_and_keeps_its_bytes(tmp_path: Path) -> None:
    root = tmp_path / "crlf"
    root.mkdir()
    original = b'[project]\r\nname = "crlf"\r\nversion = "0.1.0"\r\nrequires-python = ">=3.11"\r\ndependencies = []\r\n'
    (root / "pyproject.toml").write_bytes(original)
    (root / "train.py").write_text("print('hi')\n")
    lock(root)
    init_repo(root)
    done = _cli(root, "init")
    assert done.exit_code == 0, done.stderr
    data = (root / "pyproject.toml").read_bytes()
    assert data.startswith(original) and b"\n" not in data.replace(b"\r\n", b"")
    assert b'command = "python train.py"' in data and b"\r\nconfig =" not in data
    assert "reprise build --dry-run" in done.stdout
    commit_all(root, "reprise settings")
    dry = _cli(root, "build", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "RUN uv sync --frozen --no-install-workspace" in dry.stdout
