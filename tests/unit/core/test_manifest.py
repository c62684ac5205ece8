from __future__ import annotations

import fnmatch
import json

import pytest

from reprise.core.errors import RecordError
from reprise.core.manifest import (
    MAX_VOLATILE,
    MAX_VOLATILE_LENGTH,
    Entry,
    Manifest,
    compare_manifests,
    volatile_matcher,
)
from reprise.core.record import parse_record, schema_text

from ...recordcraft import valid_record

H1, H2, H3, H4 = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)


def _m(*entries: tuple[str, str]) -> Manifest:
    return Manifest("blake3", tuple(Entry(p, 1, h) for p, h in entries))


def test_compare_identical() -> None:
    diff = compare_manifests(_m(("a", H1), ("b", H2)), _m(("a", H1), ("b", H2)))
    assert diff.identical
    assert diff.same == ("a", "b")


def test_compare_changed_missing_extra() -> None:
    diff = compare_manifests(
        _m(("a", H1), ("b", H2), ("c", H3)), _m(("a", H1), ("b", H4), ("d", H4))
    )
    assert not diff.identical
    assert diff.changed == ("b",)
    assert diff.missing == ("c",)
    assert diff.extra == ("d",)


def test_different_algorithms_never_compare_equal() -> None:
    a = Manifest("blake3", (Entry("a", 1, H1),))
    b = Manifest("sha256", (Entry("a", 1, H1),))
    assert compare_manifests(a, b).changed == ("a",)


def test_a_symlink_never_equals_a_file_with_the_same_hash() -> None:
    a = Manifest("blake3", (Entry("x", 3, H1, "file"),))
    b = Manifest("blake3", (Entry("x", 3, H1, "symlink", "abc"),))
    assert compare_manifests(a, b).changed == ("x",)


def test_an_incomplete_manifest_is_never_identical() -> None:
    full = _m(("a", H1))
    cut = Manifest("blake3", full.files, complete=False, note="more than 1 entries")
    diff = compare_manifests(full, cut)
    assert not diff.identical and diff.incomplete == ("rerun: more than 1 entries",)
    assert diff.outcome() == "inconclusive" and diff.to_dict()["outcome"] == "inconclusive"


def test_each_outcome_of_a_comparison() -> None:
    full = _m(("a", H1), ("b", H2))
    cut = Manifest("blake3", full.files[:1], complete=False, note="limit")
    other = _m(("a", H2), ("b", H2))
    assert compare_manifests(full, full).outcome() == "identical"
    assert compare_manifests(_m(), _m()).outcome() == "nothing-compared"
    assert compare_manifests(full, other).outcome() == "diverged"
    assert compare_manifests(full, _m(("a", H1))).outcome() == "diverged"  # b missing
    # b only left out of a manifest that hit its limit: not proven to differ
    assert compare_manifests(full, cut).outcome() == "inconclusive"
    assert compare_manifests(cut, full).outcome() == "inconclusive"
    # the side that lacks b is complete: b is truly not there, however incomplete the other
    listed_cut = Manifest("blake3", full.files, complete=False, note="limit")
    assert compare_manifests(listed_cut, _m(("a", H1))).outcome() == "diverged"  # missing
    assert compare_manifests(_m(("a", H1)), listed_cut).outcome() == "diverged"  # extra
    # a file both list differs: proven, however incomplete
    assert compare_manifests(other, cut).outcome() == "diverged"
    # a rerun that ended otherwise diverged, whatever its files
    assert compare_manifests(full, full).outcome(same_status=False) == "diverged"


def test_roundtrip_keeps_kinds_and_completeness() -> None:
    m = Manifest(
        "blake3",
        (Entry("a", 1, H1), Entry("b", 0, None, "fifo"), Entry("c", 5, H2, "symlink", "/etc")),
        complete=False,
        note="why",
    )
    assert Manifest.from_json(m.to_json()) == m


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/shadow", "a/../../b", "a//b", "./a", "a\\b", "", "a/./b"]
)
def test_hostile_paths_are_refused(path: str) -> None:
    text = json.dumps({"algorithm": "blake3", "files": [{"path": path, "size": 1, "hash": H1}]})
    with pytest.raises(ValueError, match="not a relative path"):
        Manifest.from_json(text)


@pytest.mark.parametrize(
    "entry",
    [
        {"path": "a", "size": -1, "hash": H1},
        {"path": "a", "size": 1, "hash": "zz"},
        {"path": "a", "size": 1, "hash": None},
        {"path": "a", "size": 1, "hash": H1, "kind": "door"},
        {"path": "a", "size": True, "hash": H1},
    ],
)
def test_malformed_entries_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed"):
        Manifest.from_json(json.dumps({"algorithm": "blake3", "files": [entry]}))


def test_deep_nesting_is_a_value_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        Manifest.from_json("[" * 100_000 + "]" * 100_000)


def test_volatile_paths_are_recorded_but_not_compared() -> None:
    a = Manifest("blake3", (Entry("logs/a.log", 1, H1), Entry("out.txt", 1, H2)))
    b = Manifest("blake3", (Entry("logs/a.log", 1, H3), Entry("out.txt", 1, H2)))
    diff = compare_manifests(a, b, ["logs/*.log"])
    assert diff.identical and diff.volatile == ("logs/a.log",) and diff.same == ("out.txt",)


def test_nothing_compared_is_not_identical() -> None:
    empty = Manifest("blake3", ())
    diff = compare_manifests(empty, empty)
    assert not diff.identical and diff.nothing_compared
    only_volatile = Manifest("blake3", (Entry("x.log", 1, H1),))
    diff = compare_manifests(only_volatile, only_volatile, ["*.log"])
    assert diff.nothing_compared and diff.volatile == ("x.log",)


@pytest.mark.parametrize(
    "patterns",
    [
        ["logs/*.log"],
        ["*.log", "outputs/[ab]?/*", "x"],
        ["*"],
        ["outputs/hydra/*.log", "[!o]*", "*[*]*"],
    ],
)
def test_one_compiled_matcher_agrees_with_fnmatch(patterns: list[str]) -> None:
    paths = ["logs/a.log", "a.log", "outputs/a1/x", "outputs/hydra/t.log", "x", "y", "a*b", ""]
    match = volatile_matcher(patterns)
    for path in paths:
        assert match(path) == any(fnmatch.fnmatchcase(path, p) for p in patterns), path


def test_volatile_patterns_are_bounded() -> None:
    volatile_matcher(["x"] * MAX_VOLATILE)
    volatile_matcher(["x" * MAX_VOLATILE_LENGTH])
    with pytest.raises(ValueError, match="at most 64 volatile patterns of 256 characters"):
        volatile_matcher(["x"] * (MAX_VOLATILE + 1))
    with pytest.raises(ValueError):
        volatile_matcher(["x" * (MAX_VOLATILE_LENGTH + 1)])


def test_many_entries_against_the_most_patterns() -> None:
    """1,000 entries against 64 patterns, each path matched once against one regex."""
    entries = tuple(Entry(f"outputs/d{i % 97}/f{i}.log", 1, H1) for i in range(1000))
    manifest = Manifest("blake3", entries)
    patterns = [f"outputs/d{i}/*" for i in range(MAX_VOLATILE)]
    diff = compare_manifests(manifest, manifest, patterns)
    assert len(diff.volatile) + len(diff.same) == 1000 and len(diff.volatile) > 600


def test_the_record_schema_bounds_volatile_patterns_as_the_matcher_does() -> None:
    bounds = json.loads(schema_text())["properties"]["volatile"]
    assert bounds["maxItems"] == MAX_VOLATILE
    assert bounds["items"]["maxLength"] == MAX_VOLATILE_LENGTH
    for volatile in (["x"] * (MAX_VOLATILE + 1), ["x" * (MAX_VOLATILE_LENGTH + 1)]):
        with pytest.raises(RecordError, match="not a valid run record"):
            parse_record(json.dumps(valid_record(volatile=volatile)), source="bundle")
    assert parse_record(json.dumps(valid_record(volatile=["x"] * MAX_VOLATILE)), source="r")


def test_a_hard_link_compares_as_the_file_it_is() -> None:
    linked = Manifest("blake3", (Entry("o/a", 1, H1, "hardlink"),))
    plain = Manifest("blake3", (Entry("o/a", 1, H1),))
    assert compare_manifests(linked, plain).identical
    assert compare_manifests(plain, linked).identical
    other = Manifest("blake3", (Entry("o/a", 1, H2, "hardlink"),))
    assert compare_manifests(linked, other).changed == ("o/a",)
    assert Manifest.from_json(linked.to_json()) == linked
    with pytest.raises(ValueError, match="malformed manifest entry"):
        Manifest.from_json(
            json.dumps({"files": [{"path": "o/a", "size": 1, "hash": None, "kind": "hardlink"}]})
        )


def test_several_verdicts_exit_with_the_gravest() -> None:
    """A divergence is never hidden by a larger exit code that proves less (inconclusive is 7,
    nothing-compared 6); a reprise bug (70) shows above all."""
    from reprise.core.errors import combined_exit

    assert combined_exit([5, 7]) == 5 and combined_exit([7, 5, 6]) == 5
    assert combined_exit([0, 6, 7]) == 7 and combined_exit([0, 6]) == 6
    assert combined_exit([7, 3]) == 3 and combined_exit([2, 3, 4]) == 3
    assert combined_exit([5, 70]) == 70 and combined_exit([0, 0]) == 0
