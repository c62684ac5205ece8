"""Where two runs' parameters first part, from their step fingerprints."""

from __future__ import annotations

import json

from reprise.core.fingerprints import describe, first_divergence, parse


def _lines(steps: dict[int, str], detail: dict[int, dict[str, str]] | None = None) -> str:
    out = []
    for step, params in steps.items():
        record: dict[str, object] = {"step": step, "params": params}
        if detail and step in detail:
            record["per_param"] = detail[step]
        out.append(json.dumps(record))
    return "\n".join(out) + "\n"


def test_the_first_differing_step_and_the_last_identical_one_are_named() -> None:
    a = _lines({1: "a", 36: "b", 37: "c", 38: "d"}, {37: {"g0.p0": "x", "g0.p1": "y"}})
    b = _lines({1: "a", 36: "b", 37: "C", 38: "D"}, {37: {"g0.p0": "x", "g0.p1": "Y"}})
    report = first_divergence(a, b)
    assert report == {
        "step": 37,
        "last_identical_step": 36,
        "params_step": 37,
        "params": ["g0.p1"],
        "params_count": 1,
    }
    assert describe(report) == (
        "parameters first differ at step 37 (identical at step 36); differing: g0.p1"
    )


def test_identical_fingerprints_and_hostile_lines_report_nothing() -> None:
    text = _lines({1: "a", 2: "b"})
    hostile = text + '{"step": true, "params": "z"}\n' + "[" * 100_000 + "\nnot json\n"
    assert first_divergence(text, hostile) is None
    assert [r["step"] for r in parse(hostile)] == [1, 2]


def test_a_divergence_at_the_first_step_says_so_and_names_later_detail() -> None:
    a = _lines({1: "a", 10: "b"}, {10: {"w": "1"}})
    b = _lines({1: "A", 10: "B"}, {10: {"w": "2"}})
    text = describe(first_divergence(a, b) or {})
    assert (
        text
        == "parameters first differ at step 1 (the first step fingerprinted); differing at step 10: w"
    )
