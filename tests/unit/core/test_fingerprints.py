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


def test_bisect_names_the_step_where_two_partial_reruns_part() -> None:
    from reprise.core.fingerprints import bisect_finding, describe_bisect

    original = _lines({1: "a", 25: "b", 50: "c"})
    first = _lines({21: "p", 36: "q", 37: "r", 50: "s"}, {37: {"weight": "1", "bias": "2"}})
    second = _lines({21: "p", 36: "q", 37: "R", 50: "S"}, {37: {"weight": "9", "bias": "2"}})
    finding = bisect_finding(original, first, second, stop=50, every=25)
    assert finding["finding"] == "nondeterministic"
    assert (finding["step"], finding["last_identical_step"], finding["params"]) == (
        37,
        36,
        ["weight"],
    )
    assert finding["from_step"] == 20 and finding["steps_compared"] == 4
    assert describe_bisect(finding) == (
        "bisect: two reruns from step 20 to step 50 on this machine: parameters first differ "
        "at step 37 (identical at step 36); differing: weight (the run is not deterministic here)"
    )


def test_bisect_tells_a_machine_difference_from_one_that_did_not_recur() -> None:
    from reprise.core.fingerprints import bisect_finding, describe_bisect

    original = _lines({1: "a", 25: "b", 50: "c"})
    agree = _lines({1: "a", 2: "x", 50: "z"})
    machines = bisect_finding(original, agree, agree, stop=50, every=25)
    assert machines["finding"] == "between-machines" and machines["from_step"] == 0
    assert describe_bisect(machines).startswith(
        "bisect: two reruns from the start to step 50 agree with each other at every step, "
        "but not with the original at step 50"
    )
    assert "fingerprint-every = 1" in describe_bisect(machines)
    same = _lines({1: "a", 2: "x", 50: "c"})
    assert bisect_finding(original, same, same, stop=50, every=25)["finding"] == "not-recurring"
    short = _lines({1: "a", 2: "x"})
    cut = bisect_finding(original, short, short, stop=50, every=25)
    assert cut["finding"] == "incomplete"
    assert "did not reach step 50" in describe_bisect(cut)


def test_bisect_passes_that_did_not_resume_where_they_were_told_narrow_nothing() -> None:
    from reprise.core.fingerprints import bisect_finding, describe_bisect

    original = _lines({1: "a", 25: "b", 50: "c"})
    from_scratch = _lines({1: "a", 2: "x", 50: "z"})  # its own torch.save: counted from 0
    found = bisect_finding(original, from_scratch, from_scratch, stop=50, every=25, start=20)
    assert found["finding"] == "incomplete" and found["expected_from_step"] == 20
    assert "did not continue from step 20" in describe_bisect(found)
