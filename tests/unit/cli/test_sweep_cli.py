"""`reprise run -m`, `ls --sweep` and `compare --sweep` through the CLI (CliRunner, no
engine): what is refused before anything runs, and the sweep's runs found again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reprise.cli import cli
from reprise.core.errors import RecordError
from reprise.core.record import parse_record

from ...projects import init_repo, tiny_project
from ...recordcraft import valid_record, write_run

SWEEP = "sweep-20261130-120000-0000aaaa"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-j", "2", "lr=0.1"], "-j runs a sweep's runs at a time: give it with -m"),
        (["-m", "--name", "x", "lr=0.1,0.2"], "--name is for one run, not a sweep"),
        (["-m", "--detach", "lr=0.1,0.2"], "--detach is for one run, not a sweep"),
        (["-m"], "-m sweeps over overrides: give some"),
        (["-m", "lr=glob(*)"], "glob() sweeps are not supported"),
        (["-m", "lr=0.1,0.2", "nope=1,2"], "nope"),
    ],
)
def test_run_m_refuses_before_anything_is_built(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tiny_project(tmp_path / "tiny")
    init_repo(root)
    result = _invoke("--project", str(root), "run", *args)
    assert result.exit_code in (2, 3), result.output
    assert message in result.output
    assert not list(root.glob("runs/*/2*"))  # no run made


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    for i, suffix in enumerate(("aaaaaaa1", "aaaaaaa2")):
        write_run(
            tmp_path,
            valid_record(
                run_id=f"20261130-12000{i}-000001-{suffix}",
                sweep={"id": SWEEP, "index": i, "size": 2},
            ),
        )
    write_run(tmp_path, valid_record(run_id="20261130-130000-000001-bbbbbbbb"))
    return tmp_path


def test_ls_and_compare_take_a_sweep_by_id_suffix_or_latest(runs: Path) -> None:
    for ref in (SWEEP, "0000aaaa", "latest"):
        listed = _invoke("ls", "--runs-dir", str(runs), "--sweep", ref, "--json")
        assert listed.exit_code == 0, listed.output
        assert sorted(s["run_id"][-8:] for s in json.loads(listed.stdout)) == [
            "aaaaaaa1",
            "aaaaaaa2",
        ]
    compared = _invoke("compare", "--runs-dir", str(runs), "--sweep", "latest", "--json")
    assert compared.exit_code == 0, compared.output
    assert [r["run_id"][-8:] for r in json.loads(compared.stdout)["runs"]] == [
        "aaaaaaa1",
        "aaaaaaa2",
    ]  # in the sweep's order
    plain = _invoke("ls", "--runs-dir", str(runs)).stdout
    assert "sweep 0000aaaa #2" in plain and "sweep 0000aaaa #1" in plain
    missing = _invoke("ls", "--runs-dir", str(runs), "--sweep", "12345678")
    assert missing.exit_code == 2 and "no sweep '12345678'" in missing.output
    both = _invoke("compare", "--runs-dir", str(runs), "--sweep", "latest", "-e", "x")
    assert both.exit_code == 2 and "one of them" in both.output


def test_a_record_with_a_malformed_sweep_is_refused() -> None:
    record = valid_record(sweep={"id": "../x", "index": 0, "size": 1})
    with pytest.raises(RecordError, match=r"sweep\.id"):
        parse_record(json.dumps(record).encode(), source="run.json")
    record = valid_record(sweep={"id": SWEEP, "index": -1, "size": 1})
    with pytest.raises(RecordError):
        parse_record(json.dumps(record).encode(), source="run.json")
