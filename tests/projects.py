"""Make small throw-away projects (pyproject, uv.lock, config, git) for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from reprise.edges.project import uv_binary

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout


def commit_all(root: Path, message: str = "commit") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def init_repo(root: Path) -> str:
    git(root, "init", "-q", "-b", "main")
    return commit_all(root, "init")


SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


def lock(root: Path, *, offline: bool = True) -> None:
    """`uv lock` (with the package index, through the host's trust store, unless offline)."""
    args = [str(uv_binary()), "lock", "--quiet", "--project", str(root)]
    env = dict(os.environ)
    if offline:
        args.append("--offline")
    elif "SSL_CERT_FILE" not in env and Path(SYSTEM_CA).is_file():
        env["SSL_CERT_FILE"] = SYSTEM_CA
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def tiny_project(root: Path, *, name: str = "tiny", extra_tool: str = "") -> Path:
    """A project with no dependencies: its lock needs no network."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f"""[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []

[tool.uv]
package = false

[tool.reprise]
command = "python train.py"
config = "config.yaml"
{extra_tool}
"""
    )
    (root / "config.yaml").write_text("seed: 7\nlr: 0.1\nmodel:\n  width: 4\n")
    (root / "train.py").write_text("print('hello')\n")
    (root / ".gitignore").write_text("runs/\n")
    lock(root)
    return root


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "spiral"


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    return dest
