from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import ProjectError, SettingsError
from reprise.core.settings import DEFAULT_BASE_IMAGE, load_settings

ROOT = Path("/proj")


def _pyproject(**tool: object) -> dict[str, object]:
    return {
        "project": {"name": "demo"},
        "tool": {"reprise": {"command": "python train.py", **tool}},
    }


def test_defaults() -> None:
    s = load_settings(ROOT, _pyproject(), {})
    assert s.command == ("python", "train.py")
    assert s.experiment == "demo"
    assert s.base_image == DEFAULT_BASE_IMAGE
    assert s.runs_dir == ROOT / "runs"
    assert s.config is None and s.registry is None and s.gpus is None


def test_values_and_paths_resolve_against_the_root() -> None:
    s = load_settings(
        ROOT,
        _pyproject(config="conf/c.yaml", **{"runs-dir": "/data/runs", "gpus": 2, "threads": 4}),
        {},
    )
    assert s.config == ROOT / "conf/c.yaml"
    assert s.runs_dir == Path("/data/runs")
    assert s.gpus == "2"
    assert s.threads == 4


def test_environment_overrides() -> None:
    env = {
        "REPRISE_BASE_IMAGE": "x@sha256:abc",
        "REPRISE_REGISTRY": "r:5000",
        "REPRISE_GPUS": "all",
    }
    s = load_settings(ROOT, _pyproject(registry="other"), env)
    assert s.base_image == "x@sha256:abc"
    assert s.registry == "r:5000"
    assert s.gpus == "all"


def test_unknown_key() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(ROOT, _pyproject(comand="x"), {})
    assert info.value.key == "comand"
    assert info.value.hint is not None and "command" in info.value.hint


def test_missing_command() -> None:
    with pytest.raises(SettingsError, match="command is not set"):
        load_settings(ROOT, {"project": {"name": "demo"}}, {})


def test_missing_project_name() -> None:
    with pytest.raises(ProjectError, match="no \\[project\\] name"):
        load_settings(ROOT, {"tool": {"reprise": {"command": "x"}}}, {})


@pytest.mark.parametrize("gpus", ["two", "-1", "1.5"])
def test_bad_gpus(gpus: str) -> None:
    with pytest.raises(SettingsError, match="gpus"):
        load_settings(ROOT, _pyproject(gpus=gpus), {})


def test_command_as_list() -> None:
    s = load_settings(ROOT, _pyproject(command=["python", "-m", "pkg.train"]), {})
    assert s.command == ("python", "-m", "pkg.train")


def test_determinism_and_fingerprints_default_strict_and_fifty_steps() -> None:
    s = load_settings(ROOT, _pyproject(), {})
    assert (s.determinism, s.fingerprint_every) == ("strict", 50)
    s = load_settings(ROOT, _pyproject(determinism="warn", **{"fingerprint-every": "off"}), {})
    assert (s.determinism, s.fingerprint_every) == ("warn", None)
    env = {"REPRISE_DETERMINISM": "off", "REPRISE_FINGERPRINT_EVERY": "1"}
    s = load_settings(ROOT, _pyproject(), env)
    assert (s.determinism, s.fingerprint_every) == ("off", 1)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("determinism", "loose"),
        ("fingerprint-every", 0.5),
        ("fingerprint-every", -3),
        ("fingerprint-every", True),
    ],
)
def test_bad_determinism_or_fingerprint_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(ROOT, _pyproject(**{key: value}), {})
    assert caught.value.exit_code == 4 and key in caught.value.message


def test_host_setting_takes_engine_urls_and_local() -> None:
    assert load_settings(ROOT, _pyproject(host="ssh://me@box"), {}).host == "ssh://me@box"
    assert load_settings(ROOT, _pyproject(), {"REPRISE_HOST": "local"}).host == "local"
    with pytest.raises(SettingsError):
        load_settings(ROOT, _pyproject(host="ftp://box"), {})
