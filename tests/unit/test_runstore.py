from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reprise.errors import RunNotFoundError
from reprise.runstore import (
    atomic_write,
    create_run_dir,
    find_run,
    new_run_id,
    read_record,
    write_record,
)


def test_run_ids_sort_by_time_and_are_unique() -> None:
    early = new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_run_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert re.fullmatch(r"20260102-030405-[0-9a-f]{8}", early)
    assert early < late
    assert len({new_run_id() for _ in range(1000)}) == 1000


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    atomic_write(path, "one")
    atomic_write(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_create_run_dir_is_all_or_nothing(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp", "r1", {"config.yaml": b"a: 1\n"})
    assert (run / "config.yaml").read_text() == "a: 1\n"
    assert (run / "outputs").is_dir() and (run / "logs").is_dir()
    with pytest.raises(OSError):
        create_run_dir(tmp_path, "exp", "r1", {"config.yaml": b""})  # exists already
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]  # no staging left


def test_find_run_by_id_prefix_and_path(tmp_path: Path) -> None:
    for exp, rid in [
        ("a", "20260101-000000-aaaa0000"),
        ("b", "20260101-000000-aaab0000"),
        ("b", "20260202-000000-cccc0000"),
    ]:
        d = tmp_path / exp / rid
        d.mkdir(parents=True)
        write_record(d, {"run_id": rid})
    assert find_run(tmp_path, "20260202").name == "20260202-000000-cccc0000"
    assert find_run(tmp_path, "20260101-000000-aaab0000").parent.name == "b"
    assert find_run(tmp_path, str(tmp_path / "a" / "20260101-000000-aaaa0000")).parent.name == "a"
    with pytest.raises(RunNotFoundError, match="matches 2 runs"):
        find_run(tmp_path, "20260101")
    with pytest.raises(RunNotFoundError, match="no run matches"):
        find_run(tmp_path, "2030")


def test_read_record_errors(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match=r"holds no run\.json"):
        read_record(tmp_path)
    (tmp_path / "run.json").write_text("{nope")
    with pytest.raises(RunNotFoundError, match="not valid JSON"):
        read_record(tmp_path)
