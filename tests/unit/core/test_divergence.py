from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from reprise.core.divergence import describe_jsonl, diff_jsonl, diff_mappings, target_differences
from reprise.core.junit import verdicts_to_junit


def _lines(records: Sequence[Mapping[str, object]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def test_jsonl_names_first_differing_step_and_key() -> None:
    a = [{"step": s, "loss": 1.0 / s, "acc": 0.5} for s in range(1, 6)]
    b = [dict(r) for r in a]
    b[2]["loss"] = 0.3
    b[3]["loss"] = 0.2
    report = diff_jsonl(_lines(a), _lines(b))
    assert report is not None
    assert report["line"] == 3 and report["step"] == 3 and report["key"] == "loss"
    assert abs(report["abs_diff"] - abs(1 / 3 - 0.3)) < 1e-12
    text = describe_jsonl("logs/metrics.jsonl", report)
    assert "line 3 (step 3), key 'loss'" in text


def test_jsonl_identical_and_length_mismatch() -> None:
    text = _lines([{"step": 1}, {"step": 2}])
    assert diff_jsonl(text, text) is None
    report = diff_jsonl(text, _lines([{"step": 1}]))
    assert report == {"line": 2, "records": {"original": 2, "rerun": 1}}


def test_jsonl_added_key_and_unparsable_line() -> None:
    report = diff_jsonl(_lines([{"step": 1}]), _lines([{"step": 1, "extra": 2}]))
    assert report is not None and report["key"] == "extra" and report["original"] is None
    report = diff_jsonl("not json\n", "also not\n")
    assert report is not None and report["parsed"] is False


def test_target_differences_mark_what_voids() -> None:
    host = {
        "arch": "x86_64",
        "cpu": "EPYC",
        "docker_version": "20.10",
        "gpu": {
            "cuda": "12.4",
            "gpus": [{"name": "H100", "compute_capability": "9.0", "driver": "550"}],
        },
    }
    runtime = {"torch": {"devices": [{"sm_count": 132}]}}
    same = target_differences(host, runtime, host, uses_gpu=True)
    assert same == []
    other = {
        **host,
        "docker_version": "28.2",
        "gpu": {
            "cuda": "12.8",
            "gpus": [{"name": "A100", "compute_capability": "8.0", "driver": "570"}],
        },
    }
    diffs = {d.field: d for d in target_differences(host, runtime, other, uses_gpu=True)}
    assert diffs["gpu 0 model"].voids and diffs["gpu 0 compute capability"].voids
    assert not diffs["gpu 0 driver"].voids and not diffs["docker version"].voids
    assert not diffs["cuda (driver)"].voids
    cpu_only = target_differences(
        host | {"gpu": {}}, None, host | {"gpu": {}, "cpu": "Xeon"}, uses_gpu=False
    )
    assert [(d.field, d.voids) for d in cpu_only] == [("cpu model", True)]


def test_diff_mappings() -> None:
    changes = diff_mappings({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 4})
    assert changes == [
        {"key": "a.c", "a": 2, "b": 3, "only_in": None},
        {"key": "d", "a": None, "b": 4, "only_in": "b"},
    ]


def test_junit_has_one_case_per_run_and_parses() -> None:
    verdicts: list[dict[str, Any]] = [
        {
            "run_id": "r1",
            "verdict": "identical",
            "files": {"same": 4},
            "rerun_id": "x",
            "duration_s": 1.5,
        },
        {
            "run_id": "r2",
            "verdict": "diverged",
            "files": {"changed": ["a"], "missing": [], "extra": []},
            "details": ["a: differs"],
            "duration_s": 2.0,
        },
        {"run_id": "r3", "verdict": "error", "error": "image gone", "hint": "use a bundle"},
        {"run_id": "r4", "verdict": "inconclusive", "details": ["manifest incomplete"]},
        {"run_id": "r5", "verdict": "nothing-compared"},
    ]
    root = ET.fromstring(verdicts_to_junit(verdicts))
    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "1")
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == ["r1", "r2", "r3", "r4", "r5"]
    failure = cases[1].find("failure")
    assert failure is not None and "a: differs" in (failure.text or "")
    assert cases[2].find("error") is not None
    failures = [c.find("failure") for c in cases[3:]]
    assert [f.get("type") if f is not None else None for f in failures] == [
        "inconclusive",
        "nothing-compared",
    ]


def test_the_first_differing_line_of_a_text() -> None:
    from reprise.core.divergence import describe_text, first_text_difference

    report = first_text_difference("a\nb\nc\n", "a\nB\nc\n")
    assert report == {"line": 2, "original": "b", "rerun": "B"}
    assert describe_text("out.txt", report) == "out.txt: first difference at line 2: 'b' -> 'B'"
    assert first_text_difference("a\n", "a\nmore\n") == {
        "line": 2,
        "original": None,
        "rerun": "more",
    }
    assert first_text_difference("same\n", "same\n") is None


def test_a_jobs_metrics_lines_cannot_crash_the_verdict_or_swell_the_record() -> None:
    """Deep nesting raised RecursionError after the rerun; a 10 MB value went whole into the
    rerun's run.json (over 16 MiB it could no longer be read)."""
    deep = "[" * 200_000
    assert diff_jsonl('{"a": 1}\n', deep + "\n") == {
        "line": 1,
        "original": '{"a": 1}',
        "rerun": deep[:200],
        "parsed": False,
    }
    keys = {f"k{i}": i for i in range(80)}
    report = diff_jsonl(
        json.dumps({"a_loss": "x" * 10_000_000, **keys}),
        json.dumps(
            {"a_loss": "y", **{k: -v - 1 for k, v in keys.items()}, "nest": {"a": [1] * 999}}
        ),
    )
    assert report is not None
    assert len(json.dumps(report)) < 20_000
    assert report["original"] == "x" * 200 and report["more_keys"] == 82 - 50


def test_a_tensor_report_from_the_images_tool_keeps_only_its_known_shape() -> None:
    from reprise.core.divergence import clean_tensor_report, describe_tensors, tensor_summary

    hostile = {
        "loadable": True,
        "tensors": [
            {"status": "changed", "name": "w" * 1000, "max_abs_diff": "big"},
            {"status": "who knows"},
            "not an object",
            {"status": "shape", "name": "b", "original": [1] * 1000, "rerun": None},
        ],
        "values": [{"name": "lr", "original": 0.1, "rerun": 0.2}, 7],
        "tensor_count": "many",
    }
    clean = clean_tensor_report(hostile)
    assert [t["status"] for t in clean["tensors"]] == ["changed", "shape"]
    assert clean["tensors"][0]["max_abs_diff"] is None and len(clean["tensors"][0]["name"]) == 200
    assert "tensor_count" not in clean and len(clean["values"]) == 1
    lines = describe_tensors("ckpt.pt", clean)
    assert lines[0].startswith("ckpt.pt: tensor www") and "max abs diff ?" in lines[0]
    assert "max abs diff ?" in tensor_summary("ckpt.pt", clean)
    assert clean_tensor_report({"loadable": "yes"}) == {"loadable": False, "error": "unknown"}
