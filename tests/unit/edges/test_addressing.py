"""Addressing runs as a person does: latest~N, the random suffix alone, a name; and the
grammar of names and tags, checked again on every read of a record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reprise.cli import cli
from reprise.core import names
from reprise.core.errors import InvalidNameError, RecordError, RunNotFoundError
from reprise.core.record import parse_record
from reprise.edges.runstore import find_run

from ...projects import tiny_project
from ...recordcraft import valid_record, write_run

RUNS = [
    ("spiral", "20260101-000000-000001-5f3a9c1e", None),
    ("spiral", "20260102-000000-000001-0badcafe", "baseline"),
    ("other", "20260103-000000-000001-12345678", None),
    ("spiral", "20260104-000000-000001-aaaa0000", "wide"),
]


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    for exp, rid, name in RUNS:
        write_run(tmp_path, valid_record(run_id=rid, experiment=exp, name=name))
    return tmp_path


def test_latest_counts_back_from_the_newest_run(runs: Path) -> None:
    assert find_run(runs, "latest").name == "20260104-000000-000001-aaaa0000"
    assert find_run(runs, "latest~1").name == "20260103-000000-000001-12345678"
    assert find_run(runs, "latest~0").name == find_run(runs, "latest").name
    with pytest.raises(RunNotFoundError, match=r"latest~4: there are 4 runs"):
        find_run(runs, "latest~4")


def test_latest_within_an_experiment(runs: Path) -> None:
    assert find_run(runs, "latest~1", experiment="spiral").name.endswith("0badcafe")
    assert find_run(runs, "latest", experiment="other").name.endswith("12345678")
    with pytest.raises(RunNotFoundError, match="there is 1 run of experiment other"):
        find_run(runs, "latest~1", experiment="other")
    with pytest.raises(RunNotFoundError, match="there are 0 runs"):
        find_run(runs, "latest", experiment="nothing")


def test_the_random_suffix_alone(runs: Path) -> None:
    assert find_run(runs, "5f3a9c1e").name == "20260101-000000-000001-5f3a9c1e"
    assert find_run(runs, "0badcafe").parent.name == "spiral"


def test_a_suffix_that_is_also_a_prefix_is_ambiguous(runs: Path) -> None:
    write_run(runs, valid_record(run_id="12345678-000000-000001-bbbb0000"))
    with pytest.raises(RunNotFoundError, match="'12345678' matches 2 runs"):
        find_run(runs, "12345678")


def test_names_address_runs(runs: Path) -> None:
    assert find_run(runs, "baseline").name.endswith("0badcafe")
    assert find_run(runs, "wide").name.endswith("aaaa0000")
    with pytest.raises(RunNotFoundError, match="no run matches 'narrow'"):
        find_run(runs, "narrow")


def test_a_name_two_runs_carry_is_ambiguous(runs: Path) -> None:
    write_run(runs, valid_record(run_id="20260105-000000-000001-cccc0000", name="baseline"))
    with pytest.raises(RunNotFoundError, match="'baseline' matches 2 runs"):
        find_run(runs, "baseline")


@pytest.mark.parametrize("ref", ["latest~", "latest~-1", "~1", "base line", "a/../b/", "x*"])
def test_refs_that_are_nothing_are_refused(runs: Path, ref: str) -> None:
    with pytest.raises((InvalidNameError, RunNotFoundError)):
        find_run(runs, ref)


def test_with_runs_dir_the_cli_counts_latest_across_experiments(runs: Path) -> None:
    result = CliRunner().invoke(cli, ["show", "latest~1", "--runs-dir", str(runs), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["run_id"].endswith("12345678")
    by_name = CliRunner().invoke(cli, ["show", "baseline", "--runs-dir", str(runs), "--json"])
    assert json.loads(by_name.stdout)["run_id"].endswith("0badcafe")


def test_in_a_project_latest_counts_its_experiment(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "proj")
    write_run(
        root / "runs", valid_record(run_id="20260101-000000-000001-11111111", experiment="tiny")
    )
    write_run(root / "runs", valid_record(run_id="20260102-000000-000001-22222222", experiment="x"))
    result = CliRunner().invoke(cli, ["--project", str(root), "show", "latest", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["run_id"].endswith("11111111")
    too_far = CliRunner().invoke(cli, ["--project", str(root), "show", "latest~1"])
    assert too_far.exit_code == 2 and "there is 1 run of experiment tiny" in too_far.stderr


@pytest.mark.parametrize("value", ["baseline", "lr-sweep.2", "B_1"])
def test_good_run_names(value: str) -> None:
    assert names.run_name(value) == value


@pytest.mark.parametrize(
    "value", ["latest", "deadbeef", "1st", "-x", "a b", "a/b", "x" * 65, "naïve", "a\nb", ""]
)
def test_run_names_that_would_read_as_something_else_are_refused(value: str) -> None:
    with pytest.raises(InvalidNameError):
        names.run_name(value)


@pytest.mark.parametrize("value", ["paper", "lr=0.1", "fig:3", "v1.2+fix"])
def test_good_tags(value: str) -> None:
    assert names.run_tag(value) == value


@pytest.mark.parametrize("value", ["", "-x", "a b", "\x1b[31m", "x" * 65])
def test_bad_tags(value: str) -> None:
    with pytest.raises(InvalidNameError):
        names.run_tag(value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "latest"}, "name"),
        ({"name": "\x1b]8;;evil"}, "name"),
        ({"tags": ["ok", "b\nad"]}, "tags"),
    ],
)
def test_a_record_with_a_bad_name_or_tag_is_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(valid_record(**changes)), source="r")
    assert info.value.field == field


@pytest.mark.parametrize(
    "changes",
    [
        {"tags": ["a", "a"]},
        {"notes": [{"text": "x" * 5000}]},
        {"notes": [{"at": "now"}]},
        {"name": 3},
    ],
)
def test_a_record_with_malformed_tags_or_notes_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        parse_record(json.dumps(valid_record(**changes)), source="r")
