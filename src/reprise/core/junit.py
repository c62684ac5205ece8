"""JUnit XML for reproduce verdicts: one test case per compared run, so CI shows the result."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

# The verdicts that fail a test case without a divergence, and what the failure says.
_FAILURES = {
    "inconclusive": "inconclusive: a manifest is incomplete, and nothing it lists differs",
    "nothing-compared": "nothing compared: the run produced no output to prove identical",
}


def verdicts_to_junit(
    verdicts: Sequence[dict[str, Any]], *, suite: str = "reprise reproduce"
) -> str:
    failures = sum(1 for v in verdicts if v["verdict"] == "diverged" or v["verdict"] in _FAILURES)
    errors = sum(1 for v in verdicts if v["verdict"] == "error")
    total_time = sum(v.get("duration_s") or 0.0 for v in verdicts)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(verdicts)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{total_time:.3f}",
    )
    for v in verdicts:
        case = ET.SubElement(
            root,
            "testcase",
            classname="reprise.reproduce",
            name=str(v["run_id"]),
            time=f"{(v.get('duration_s') or 0.0):.3f}",
        )
        verdict = str(v["verdict"])
        message = _FAILURES.get(verdict)
        if verdict == "diverged":
            files = v.get("files") or {}
            message = (
                f"diverged: {len(files.get('changed', []))} changed, "
                f"{len(files.get('missing', []))} missing, {len(files.get('extra', []))} extra"
            )
        if message is not None:
            failure = ET.SubElement(case, "failure", message=message, type=verdict)
            failure.text = "\n".join(v.get("details") or [])
        elif verdict == "error":
            error = ET.SubElement(
                case, "error", message=str(v.get("error")), type="could-not-reproduce"
            )
            error.text = str(v.get("hint") or "")
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"identical: rerun {v.get('rerun_id')}, {(v.get('files') or {}).get('same', 0)} files"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
