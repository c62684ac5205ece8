"""JUnit XML for reproduce verdicts: one test case per compared run, so CI shows the result."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any


def verdicts_to_junit(
    verdicts: Sequence[dict[str, Any]], *, suite: str = "reprise reproduce"
) -> str:
    failures = sum(
        1 for v in verdicts if v["verdict"] in ("diverged", "nothing-compared", "inconclusive")
    )
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
        if v["verdict"] == "diverged":
            files = v.get("files") or {}
            message = (
                f"diverged: {len(files.get('changed', []))} changed, "
                f"{len(files.get('missing', []))} missing, {len(files.get('extra', []))} extra"
            )
            failure = ET.SubElement(case, "failure", message=message, type="diverged")
            failure.text = "\n".join(v.get("details") or [])
        elif v["verdict"] == "inconclusive":
            failure = ET.SubElement(
                case,
                "failure",
                message="inconclusive: a manifest is incomplete, and what both list agrees",
                type="inconclusive",
            )
            failure.text = "\n".join(v.get("details") or [])
        elif v["verdict"] == "nothing-compared":
            failure = ET.SubElement(
                case,
                "failure",
                message="nothing compared: the run produced no output to prove identical",
                type="nothing-compared",
            )
            failure.text = "\n".join(v.get("details") or [])
        elif v["verdict"] == "error":
            error = ET.SubElement(
                case, "error", message=str(v.get("error")), type="could-not-reproduce"
            )
            error.text = str(v.get("hint") or "")
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"identical: rerun {v.get('rerun_id')}, {(v.get('files') or {}).get('same', 0)} files"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
