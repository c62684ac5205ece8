"""A checkpoint's tensors in one line unless -v, and `reprise diff`'s layout. Pure."""

from __future__ import annotations

from typing import Any

from reprise.core.diffview import input_lines, output_lines
from reprise.core.divergence import TWO_RUNS, describe_tensors, tensor_summary

REPORT: dict[str, Any] = {
    "loadable": True,
    "tensor_count": 24,
    "tensors": [
        {
            "name": "w",
            "status": "changed",
            "max_abs_diff": 0.5,
            "elements_differing": 3,
            "shape": [4],
        },
        {
            "name": "b",
            "status": "changed",
            "max_abs_diff": float("nan"),
            "elements_differing": 1,
            "shape": [1],
        },
        {
            "name": "v",
            "status": "changed",
            "max_abs_diff": 1.25,
            "elements_differing": 9,
            "shape": [9],
        },
        {"name": "gone", "status": "missing"},
    ],
    "values": [{"name": "lr", "original": "0.01", "rerun": "0.1"}],
}


def test_a_checkpoint_is_one_line_naming_how_many_tensors_differ_and_the_largest() -> None:
    assert describe_tensors("ckpt.pt", REPORT, TWO_RUNS, verbose=False) == [
        "ckpt.pt: 4 of 24 tensors differ, max abs diff 1.25 (v); 1 missing (in run b); "
        "1 value differs (lr)"
    ]
    assert len(describe_tensors("ckpt.pt", REPORT, TWO_RUNS, verbose=True)) == 5
    one = {"loadable": True, "tensors": REPORT["tensors"][:1], "values": []}  # an older runtime
    assert tensor_summary("p.pt", one) == "p.pt: 1 tensor differs, max abs diff 0.5 (w)"
    seeded = {
        "loadable": True,
        "tensors": [
            {"name": "rng.torch", "status": "changed", "max_abs_diff": 4e9},
            {"name": "model.w", "status": "changed", "max_abs_diff": 0.5},
        ],
        "values": [{"name": f"rng.python.{i}", "original": "1", "rerun": "2"} for i in range(600)],
    }
    assert tensor_summary("c.pt", seeded) == (
        "c.pt: 2 tensors differ, max abs diff 0.5 (model.w); the saved random-number state differs"
    )
    assert tensor_summary("p.pt", {"loadable": True, "tensors": [], "values": []}) == (
        "p.pt: bytes differ, but every tensor and value is equal"
    )


def test_inputs_come_in_a_fixed_order_and_values_are_made_printable() -> None:
    lines = input_lines(
        {
            "config": [{"key": "lr", "a": 0.1, "b": 0.2}, {"key": "n\x1b[2J", "a": 1, "b": 2}],
            "host": [{"key": "gpu", "a": "x", "b": "y"}],
            "command": [],
        }
    )
    assert lines == [
        "inputs",
        "  config       lr: 0.1 -> 0.2",
        "               n\\x1b[2J: 1 -> 2",
        "  seed         same",
        "  code         same",
        "  image        same",
        "  environment  same",
        "  host         gpu: 'x' -> 'y'",
    ]


def test_outputs_say_how_many_files_differ_and_point_at_v() -> None:
    lines = output_lines(
        {"changed": ["a.pt"], "missing": [], "extra": [], "same": 3},
        ["a.pt: 2 of 5 tensors differ, max abs diff 1 (w)"],
        verbose=False,
    )
    assert lines[0] == "outputs  differ: 1 of 4 files" and lines[-1] == "  (-v lists every tensor)"
    identical = output_lines({"identical": True, "same": 3}, [], verbose=False)
    assert identical == ["outputs  identical (3 files)"]
