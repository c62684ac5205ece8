"""`reprise build --no-cache`: built even when the image exists, every build step anew (the
engine's cache unused) and every layer packed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reprise.cli import cli
from reprise.commands import build as builder

from ...projects import init_repo, tiny_project


class _Engine:
    def image_attrs(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:" + "2" * 64}  # the image exists


class _Plan:
    tag = "reprise/tiny:0123456789abcdef0123"


def test_no_cache_rebuilds_an_existing_image_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    inputs = type("Inputs", (), {"base_ref": "base"})()
    monkeypatch.setattr(builder, "prepare", lambda *a, **k: (inputs, _Plan(), "base@sha256:x"))
    monkeypatch.setattr(builder, "ensure_local", lambda *a, **k: None)

    def _build(*args: Any, **kwargs: Any) -> str:
        calls.append(kwargs)
        return "built"

    monkeypatch.setattr(builder, "_build", _build)
    monkeypatch.setattr(builder, "cache_dir", lambda: tmp_path)
    project: Any = object()
    reused = builder.build(project, _Engine(), lambda _: None)  # type: ignore[arg-type]
    assert not reused.built and calls == []
    assert builder.build(project, _Engine(), lambda _: None, no_cache=True) == "built"  # type: ignore[arg-type, comparison-overlap]
    assert calls == [{"reuse": False, "no_cache": True}]


def test_the_cli_passes_no_cache_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    seen: dict[str, Any] = {}

    def build_project(project: Any, say: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        return {"tag": "t", "id": "i", "built": True}

    monkeypatch.setattr(builder, "build_project", build_project)
    result = CliRunner().invoke(cli, ["--project", str(root), "build", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert seen["no_cache"] is True and seen["force"] is False


@pytest.mark.parametrize("command", [["build"], ["run"], ["run", "-m", "lr=0.1,0.2"]])
def test_an_empty_wheelhouse_is_reprises_error_not_dockers(
    tmp_path: Path, command: list[str]
) -> None:
    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    (tmp_path / "wheels").mkdir()
    result = CliRunner().invoke(
        cli,
        ["--project", str(root), *command],
        env={"REPRISE_WHEELHOUSE": str(tmp_path / "wheels"), "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert result.exit_code == 4, result.output
    assert f"wheelhouse {tmp_path / 'wheels'} holds no files" in result.stderr
    assert "hint: put the project's wheels there" in result.stderr
