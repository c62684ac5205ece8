from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reprise.core import names
from reprise.core.errors import InvalidNameError


def test_run_ids_sort_by_time_to_the_microsecond_and_are_unique() -> None:
    early = names.new_run_id(datetime(2026, 1, 2, 3, 4, 5, 100, tzinfo=UTC))
    late = names.new_run_id(datetime(2026, 1, 2, 3, 4, 5, 200, tzinfo=UTC))
    assert names.RUN_ID.fullmatch(early) and early.startswith("20260102-030405-000100-")
    assert early < late  # same second, still newest last
    assert len({names.new_run_id() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (names.run_id, "../../x"),
        (names.run_id, "20260101-000000-AAAA0000"),
        (names.experiment, ".."),
        (names.experiment, "a/b"),
        (names.experiment, "/abs"),
        (names.experiment, ""),
        (names.commit, "../../../.ssh"),
        (names.commit, "abc"),
        (names.image_id, "sha256:../x"),
        (names.dataset, "../data"),
        (names.relative_path, "../x"),
        (names.relative_path, "/x"),
        (names.relative_path, "a/./b"),
        (names.registry, "bad registry"),
        (names.registry, "host:5000/Team\n"),
        (names.reference, "repo@sha256:short"),
        (names.env_name, "A-B"),
    ],
)
def test_values_that_would_leave_their_place_are_refused(check: object, value: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check(value)  # type: ignore[operator]
    assert repr(value) in info.value.message


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (names.run_id, "20261123-143012-5f3a9c1e"),
        (names.run_id, "20261123-143012-482913-5f3a9c1e"),
        (names.experiment, "spiral.v2_x-1"),
        (names.commit, "a" * 40),
        (names.registry, "127.0.0.1:5000/team"),
        (names.registry, "ghcr.io/acme"),
        (names.reference, "127.0.0.1:5000/demo/reprise/spiral@sha256:" + "a" * 64),
        (names.reference, "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"),
        (names.subdir, ""),
        (names.subdir, "projects/a"),
    ],
)
def test_good_values_pass(check: object, value: str) -> None:
    assert check(value) == value  # type: ignore[operator]
