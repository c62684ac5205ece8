from __future__ import annotations

from pathlib import Path

import pytest

from reprise.core.errors import InvalidNameError, RecordError, RunNotFoundError
from reprise.edges.runstore import (
    atomic_write,
    code_cache,
    create_run_dir,
    find_run,
    read_record,
)

from ...recordcraft import valid_record, write_run


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    atomic_write(path, "one")
    atomic_write(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_create_run_dir_is_all_or_nothing(tmp_path: Path) -> None:
    rid = "20260101-000000-000001-aaaa0000"
    run = create_run_dir(tmp_path, "exp", rid, {"config.yaml": b"a: 1\n"})
    assert (run / "config.yaml").read_text() == "a: 1\n"
    assert (run / "outputs").is_dir() and (run / "logs").is_dir()
    with pytest.raises(OSError):
        create_run_dir(tmp_path, "exp", rid, {"config.yaml": b""})  # exists already
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [rid]  # no staging left


@pytest.mark.parametrize(
    ("experiment", "run_id"),
    [
        ("../x", "20260101-000000-aaaa0000"),
        ("exp", "../../x"),
        ("/abs", "20260101-000000-aaaa0000"),
    ],
)
def test_create_run_dir_refuses_names_that_leave(
    tmp_path: Path, experiment: str, run_id: str
) -> None:
    with pytest.raises(InvalidNameError):
        create_run_dir(tmp_path / "runs", experiment, run_id, {})
    assert not (tmp_path / "x").exists()


def test_find_run_by_id_prefix_and_path(tmp_path: Path) -> None:
    for exp, rid in [
        ("a", "20260101-000000-aaaa0000"),
        ("b", "20260101-000000-aaab0000"),
        ("b", "20260202-000000-cccc0000"),
    ]:
        write_run(tmp_path, valid_record(run_id=rid, experiment=exp))
    assert find_run(tmp_path, "20260202").name == "20260202-000000-cccc0000"
    assert find_run(tmp_path, "20260101-000000-aaab0000").parent.name == "b"
    assert find_run(tmp_path, str(tmp_path / "a" / "20260101-000000-aaaa0000")).parent.name == "a"
    with pytest.raises(RunNotFoundError, match="matches 2 runs"):
        find_run(tmp_path, "20260101")
    with pytest.raises(RunNotFoundError, match="no run matches"):
        find_run(tmp_path, "2030")
    with pytest.raises(InvalidNameError, match="not a run id"):
        find_run(tmp_path, "2026*")


def test_read_record_errors(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match=r"holds no run\.json"):
        read_record(tmp_path)
    (tmp_path / "run.json").write_text("{nope")
    with pytest.raises(RecordError, match="not valid JSON"):
        read_record(tmp_path)
    (tmp_path / "run.json").write_text("[" * 50_000)
    with pytest.raises(RecordError, match="nested too deeply"):
        read_record(tmp_path)


@pytest.mark.parametrize("odd", ["odd,dir", "odd:dir", "back\\slash"])
def test_a_runs_dir_the_overlay_cannot_name_is_refused_before_anything_is_made(
    tmp_path: Path, odd: str
) -> None:
    from reprise.core.errors import UsageError
    from reprise.edges.runstore import check_runs_dir

    runs = tmp_path / odd / "runs"
    with pytest.raises(UsageError) as caught:
        check_runs_dir(runs)
    assert caught.value.exit_code == 2 and "runs-dir" in (caught.value.hint or "")
    assert not (tmp_path / odd).exists()


def test_each_project_folder_of_a_commit_has_its_own_code_cache(tmp_path: Path) -> None:
    commit = "a" * 40
    places = {
        code_cache(tmp_path, commit, sub, patch)
        for sub in ("", "a/b", "a_b", "a-b", "a/b/c")
        for patch in (None, "sha256:" + "1" * 64)
    }
    assert len(places) == 10
    assert all(p.parent == tmp_path / ".cache" / "code" for p in places)
    with pytest.raises(InvalidNameError):
        code_cache(tmp_path, commit, "../elsewhere", None)
