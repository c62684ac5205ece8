"""Comparing two runs' outputs: the verdict object, the manifests, and the reports on each
differing file (metrics lines, tensors). Shared by `reprise reproduce` and `reprise diff`.

The files compared were written by jobs: they are opened as regular files only, and read
within bounds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.core import fingerprints, keys
from reprise.core.display import human_bytes, printable
from reprise.core.divergence import (
    JSONL_SUFFIXES,
    RERUN,
    TENSOR_SUFFIXES,
    TargetDifference,
    clean_tensor_report,
    describe_jsonl,
    describe_tensors,
    describe_text,
    diff_jsonl,
    first_text_difference,
)
from reprise.core.errors import RecordError, RepriseError, UsageError
from reprise.core.manifest import MAX_BYTES, Manifest, ManifestDiff
from reprise.core.progress import Say, quiet
from reprise.edges.runfiles import open_regular, read_regular, read_text_or_none
from reprise.execution.backend import Backend

JSONL_LIMIT = 64 << 20  # per file: larger metrics files are compared by hash alone


@dataclass
class Verdict:
    run_id: str
    run_dir: str
    verdict: str  # identical | diverged | error
    exit_code: int
    rerun_id: str | None = None
    rerun_dir: str | None = None
    rerun_status: str | None = None
    image: dict[str, Any] = field(default_factory=dict)
    target: list[TargetDifference] = field(default_factory=list)
    files: ManifestDiff | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    duration_s: float | None = None
    data_changed: list[str] = field(default_factory=list)
    bisect: dict[str, Any] | None = None  # what --bisect's partial reruns found

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "rerun_id": self.rerun_id,
            "rerun_dir": self.rerun_dir,
            "rerun_status": self.rerun_status,
            "image": self.image,
            "target": {
                "differences": [d.to_dict() for d in self.target],
                "guaranteed": not any(d.voids for d in self.target),
            },
            "files": self.files.to_dict() if self.files else None,
            "reports": self.reports,
            "details": self.details,
            "data_changed": self.data_changed,
            "error": self.error,
            "hint": self.hint,
            "duration_s": self.duration_s,
            "bisect": self.bisect,
        }


def error_verdict(run_ref: str, run_dir: Path | None, exc: RepriseError) -> Verdict:
    return Verdict(
        run_id=run_dir.name if run_dir else run_ref,
        run_dir=str(run_dir) if run_dir else "",
        verdict="error",
        exit_code=exc.exit_code,
        error=exc.message,
        hint=exc.hint,
    )


def load_manifest(run_dir: Path) -> Manifest:
    """A run's manifest.json, bounded and validated (every path inside the run)."""
    path = run_dir / keys.RUN_MANIFEST
    try:
        found = read_regular(run_dir, keys.RUN_MANIFEST, MAX_BYTES)
    except OSError as exc:
        raise RecordError(f"{path} cannot be read: {exc.strerror or exc}", path=str(path)) from exc
    if found is None:
        raise UsageError(
            f"{path} is missing: the run never finished",
            hint="only a finished run can be reproduced or compared",
        )
    if found[1]:
        raise RecordError(f"{path} is over {MAX_BYTES} bytes", path=str(path))
    try:
        return Manifest.from_json(found[0])
    except ValueError as exc:
        raise RecordError(f"{path} is not a valid manifest: {exc}", path=str(path)) from exc


def _regular(root: Path, rel: str) -> bool:
    try:
        os.close(open_regular(root, rel))
    except OSError:
        return False
    return True


def _text(root: Path, rel: str) -> str | None:
    return read_text_or_none(root, rel, JSONL_LIMIT)


def _text_pair(a_dir: Path, b_dir: Path, path: str) -> tuple[str, str] | None:
    """Both files as text, when both are UTF-8 without NUL bytes (and within bounds)."""
    if path.endswith(TENSOR_SUFFIXES):
        return None
    out = []
    for root in (a_dir, b_dir):
        try:
            found = read_regular(root, path, JSONL_LIMIT)
        except OSError:
            return None
        if found is None or found[1] or b"\0" in found[0]:
            return None
        try:
            out.append(found[0].decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return out[0], out[1]


def explain(
    backend: Backend | None,
    image_id: str | None,
    a_dir: Path,
    b_dir: Path,
    diff: ManifestDiff,
    kinds: tuple[dict[str, str], dict[str, str]] = ({}, {}),
    *,
    sides: tuple[str, str] = RERUN,
    verbose: bool = True,
    say: Say = quiet,
) -> tuple[dict[str, Any], list[str]]:
    """Reports on each changed file: metrics lines, tensors (one line per file unless
    ``verbose``); plus missing and extra files. ``sides`` names a and b in the lines."""
    reports: dict[str, Any] = {}
    lines: list[str] = list(
        f"manifest incomplete ({note}): nothing can be proven identical" for note in diff.incomplete
    )
    for path in diff.changed:
        ka, kb = kinds[0].get(path, "file"), kinds[1].get(path, "file")
        if "hardlink" in (ka, kb) and {ka, kb} <= {"file", "hardlink"}:
            lines.append(f"{path}: content differs (a hard-linked file: compared by hash only)")
            continue
        if ka != kb or ka != "file":
            lines.append(
                f"{path}: {ka} in {sides[0]}, {kb} in {sides[1]}"
                if ka != kb
                else f"{path}: {ka} differs"
            )
            continue
        if not (_regular(a_dir, path) and _regular(b_dir, path)):
            lines.append(f"{path}: content differs ({sides[0]}'s file is not here to compare)")
            continue
        if path == fingerprints.PATH:
            ta, tb = _text(a_dir, path), _text(b_dir, path)
            found = fingerprints.first_divergence(ta, tb) if ta and tb else None
            if found is not None:
                reports[path] = {"kind": "fingerprints", **found}
                lines.insert(0, fingerprints.describe(found))  # the when, before the what
                continue
        if path.endswith(JSONL_SUFFIXES):
            ta, tb = _text(a_dir, path), _text(b_dir, path)
            report = diff_jsonl(ta, tb) if ta is not None and tb is not None else None
            if report is not None:
                reports[path] = {"kind": "jsonl", **report}
                lines.append(describe_jsonl(path, report, sides))
                continue
        text = _text_pair(a_dir, b_dir, path)
        if text is not None:
            report = first_text_difference(*text)
            if report is not None:
                reports[path] = {"kind": "text", **report}
                lines.append(describe_text(path, report))
                continue
        if path.endswith(TENSOR_SUFFIXES) and backend is not None and image_id is not None:
            say(f"comparing the tensors of {printable(path)} in the run's image")
            report = compare_tensors(backend, image_id, a_dir / path, b_dir / path)
            reports[path] = {"kind": "tensors", **report}
            lines.extend(describe_tensors(path, report, sides, verbose=verbose))
            continue
        size_a = (a_dir / path).stat().st_size
        size_b = (b_dir / path).stat().st_size
        lines.append(f"{path}: content differs ({human_bytes(size_a)} -> {human_bytes(size_b)})")
    lines += [f"{p}: missing from {sides[1]}" for p in diff.missing]
    lines += [f"{p}: only in {sides[1]}" for p in diff.extra]
    return reports, lines


def compare_tensors(backend: Backend, image_id: str, a: Path, b: Path) -> dict[str, Any]:
    """Load both files with the image's own torch/NumPy and compare tensor by tensor."""
    out = backend.run_tool(
        image_id,
        ["python", "-m", "reprise_runtime.compare", f"/in/a/{a.name}", f"/in/b/{b.name}"],
        {f"a/{a.name}": a, f"b/{b.name}": b},
    )
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError):
        return {"loadable": False, "error": f"no report from the comparison: {out[-200:]!r}"}
    if not isinstance(result, dict):
        return {"loadable": False, "error": "the comparison's report is not an object"}
    return clean_tensor_report(result)


def nondeterministic_note(*records: dict[str, Any]) -> list[str]:
    """What the runtime saw of operations without a deterministic implementation (in
    determinism "warn"), or that determinism was off: the likely cause of a divergence."""
    ops: list[str] = []
    modes = set()
    for record in records:
        runtime = record.get("runtime") or {}
        modes.add(record.get("determinism") or runtime.get("determinism") or "strict")
        for op in runtime.get("nondeterministic_ops") or []:
            if isinstance(op, str) and op not in ops:
                ops.append(op[:200])
    notes = []
    if ops:
        shown = ", ".join(ops[:5]) + (" ..." if len(ops) > 5 else "")
        notes.append(f"the run used operations without a deterministic implementation: {shown}")
    if "off" in modes:
        notes.append('determinism was "off": torch was free to pick nondeterministic kernels')
    return notes
