from __future__ import annotations

import json
from typing import Any

import pytest

from reprise.core.errors import RecordError
from reprise.core.record import parse_record, schema_text

from ...recordcraft import valid_record


def test_a_valid_record_passes() -> None:
    record = valid_record()
    assert parse_record(json.dumps(record), source="r") == record


def test_the_schema_is_a_json_schema_document() -> None:
    schema = json.loads(schema_text())
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "run_id" in schema["required"]


def _code(**changes: Any) -> dict[str, Any]:
    return {**valid_record()["code"], **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"run_id": "../../x"}, "run_id"),
        ({"experiment": "../../etc"}, "experiment"),
        ({"experiment": "/abs"}, "experiment"),
        ({"code": _code(commit="../../../.ssh")}, "code.commit"),
        ({"code": _code(subdir="../up")}, "code.subdir"),
        ({"reproduces": "x/../y"}, "reproduces"),
        ({"data": {"../d": {"hash": "sha256:" + "0" * 64}}}, "data"),
        ({"image": {"id": "sha256:" + "1" * 64, "repo_digest": "evil\nname"}}, "image.repo_digest"),
        ({"environment": {"user": {"A-B": "x"}}}, "environment"),
    ],
)
def test_names_that_become_paths_or_tags_are_checked(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(valid_record(**changes)), source="bundle")
    assert info.value.field == field


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": 2**32},
        {"seed": -1},
        {"status": "hacked"},
        {"threads": 0},
        {"command": []},
        {"image": {"id": "not-an-id"}},
        {"container": {"id": "zzz"}},
        {"gpus": "all; rm -rf /"},
        {"schema": 2},
    ],
)
def test_shapes_and_ranges_are_checked(changes: dict[str, Any]) -> None:
    with pytest.raises(RecordError, match="not a valid run record"):
        parse_record(json.dumps(valid_record(**changes)), source="r")


def test_size_and_nesting_are_bounded_before_use() -> None:
    with pytest.raises(RecordError, match="over the"):
        parse_record(b" " * (17 << 20), source="r")
    with pytest.raises(RecordError, match="nested too deeply"):
        parse_record("[" * 100_000, source="r")
    with pytest.raises(RecordError, match="not a valid run record"):
        parse_record("[]", source="r")
