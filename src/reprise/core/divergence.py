"""Where two runs differ: metrics lines, records, and the target machine. Pure functions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".ndjson")
TENSOR_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".npy", ".npz")


MAX_KEYS = 50  # differing keys named in a report


def _bounded(value: Any) -> Any:
    """A value of the job's as a report keeps it: a number or a short string as it is, else
    its JSON cut to 200 characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:200]
    try:
        return json.dumps(value, sort_keys=True)[:200]
    except (ValueError, TypeError, RecursionError):
        return repr(type(value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def diff_jsonl(original: str, rerun: str) -> dict[str, Any] | None:
    """The first record (line) that differs, its differing keys, and by how much."""
    lines_a = original.splitlines()
    lines_b = rerun.splitlines()
    for index, (la, lb) in enumerate(zip(lines_a, lines_b, strict=False)):
        if la == lb:
            continue
        report: dict[str, Any] = {"line": index + 1}
        try:
            ra, rb = json.loads(la), json.loads(lb)
        except (ValueError, RecursionError):  # the job wrote them: any line, however nested
            report.update({"original": la[:200], "rerun": lb[:200], "parsed": False})
            return report
        if not isinstance(ra, dict) or not isinstance(rb, dict):
            report.update({"original": la[:200], "rerun": lb[:200], "parsed": False})
            return report
        if "step" in ra:
            report["step"] = ra["step"]
        keys = [
            k for k in sorted(ra.keys() | rb.keys()) if ra.get(k, _MISSING) != rb.get(k, _MISSING)
        ]
        first = keys[0]
        va, vb = ra.get(first), rb.get(first)
        report.update(  # bounded: the report goes into the rerun's record
            {
                "key": first[:200],
                "keys": [k[:200] for k in keys[:MAX_KEYS]],
                "original": _bounded(va),
                "rerun": _bounded(vb),
            }
        )
        if len(keys) > MAX_KEYS:
            report["more_keys"] = len(keys) - MAX_KEYS
        na, nb = _number(va), _number(vb)
        if na is not None and nb is not None:
            delta = abs(na - nb)
            report["abs_diff"] = delta
            if na != 0 and math.isfinite(delta):
                report["rel_diff"] = delta / abs(na)
        return report
    if len(lines_a) != len(lines_b):
        return {
            "line": min(len(lines_a), len(lines_b)) + 1,
            "records": {"original": len(lines_a), "rerun": len(lines_b)},
        }
    return None


def first_text_difference(original: str, rerun: str) -> dict[str, Any] | None:
    """Where two texts first differ: the line number and both lines (cut to 200 characters);
    None when they are equal."""
    lines_a, lines_b = original.splitlines(), rerun.splitlines()
    for index, (la, lb) in enumerate(zip(lines_a, lines_b, strict=False)):
        if la != lb:
            return {"line": index + 1, "original": la[:200], "rerun": lb[:200]}
    if len(lines_a) != len(lines_b):
        at = min(len(lines_a), len(lines_b))
        return {
            "line": at + 1,
            "original": lines_a[at][:200] if at < len(lines_a) else None,
            "rerun": lines_b[at][:200] if at < len(lines_b) else None,
        }
    return None if original == rerun else {"line": None, "original": None, "rerun": None}


def describe_text(path: str, report: Mapping[str, Any]) -> str:
    if report.get("line") is None:
        return f"{path}: the texts differ in line endings or whitespace only"
    return (
        f"{path}: first difference at line {report['line']}: "
        f"{report['original']!r} -> {report['rerun']!r}"
    )


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


# What the two sides of a comparison are called: a rerun against its original
# (`reproduce`), or any two runs (`diff`, where "rerun" would be untrue).
RERUN = ("the original", "the rerun")
TWO_RUNS = ("run a", "run b")


def describe_jsonl(path: str, report: Mapping[str, Any], sides: tuple[str, str] = RERUN) -> str:
    if "records" in report:
        r = report["records"]
        return f"{path}: {r['original']} records in {sides[0]}, {r['rerun']} in {sides[1]}"
    where = f"line {report['line']}"
    if "step" in report:
        where += f" (step {report['step']})"
    if "key" not in report:
        return f"{path}: first difference at {where}"
    text = f"{path}: first difference at {where}, key {report['key']!r}: {report['original']!r} -> {report['rerun']!r}"
    if "abs_diff" in report:
        text += f" (abs diff {report['abs_diff']:.3g})"
    others = [k for k in report["keys"] if k != report["key"]]
    if others:
        text += f"; also {', '.join(others)}"
    return text


MAX_TENSOR_ENTRIES = 10_000  # tensors (and values) a comparison report keeps
_STATUSES = ("changed", "shape", "dtype", "missing", "extra")


def clean_tensor_report(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A tensor comparison's report as the image's own tool printed it (a bundle's image is
    anyone's), kept to its known shape: entries of another shape dropped, text cut to 200
    characters, numbers only where numbers go, at most MAX_TENSOR_ENTRIES of each list."""

    def text(value: Any) -> str:
        return str(value)[:200]

    def number(value: Any) -> float | int | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok else None

    if raw.get("loadable") is not True:
        return {"loadable": False, "error": text(raw.get("error", "unknown"))}
    tensors = []
    for t in list(raw.get("tensors") or [])[:MAX_TENSOR_ENTRIES]:
        if not isinstance(t, Mapping) or t.get("status") not in _STATUSES:
            continue
        entry: dict[str, Any] = {"name": text(t.get("name", "?")), "status": t["status"]}
        if t["status"] == "changed":
            entry["max_abs_diff"] = number(t.get("max_abs_diff"))
            entry["elements_differing"] = number(t.get("elements_differing"))
            entry["shape"] = text(t.get("shape"))
            entry["dtype"] = text(t.get("dtype"))
        elif t["status"] in ("shape", "dtype"):
            entry["original"], entry["rerun"] = text(t.get("original")), text(t.get("rerun"))
        tensors.append(entry)
    values = [
        {
            "name": text(v.get("name", "?")),
            "original": text(v.get("original")),
            "rerun": text(v.get("rerun")),
        }
        for v in list(raw.get("values") or [])[:MAX_TENSOR_ENTRIES]
        if isinstance(v, Mapping)
    ]
    out: dict[str, Any] = {"loadable": True, "tensors": tensors, "values": values}
    if (count := number(raw.get("tensor_count"))) is not None:
        out["tensor_count"] = count
    return out


def describe_tensors(
    path: str, report: Mapping[str, Any], sides: tuple[str, str] = RERUN, *, verbose: bool = True
) -> list[str]:
    """One line per tensor and value that differs; or, not ``verbose``, one line for the
    file: how many of its tensors differ, the largest difference and where."""
    if not report.get("loadable"):
        return [f"{path}: not loadable as tensors ({report.get('error', 'unknown')})"]
    if not verbose:
        return [tensor_summary(path, report, sides)]
    lines = []
    for t in report.get("tensors", []):
        if t["status"] == "changed":
            lines.append(
                f"{path}: tensor {t['name']} differs, max abs diff {_g(t.get('max_abs_diff'))} "
                f"({t['elements_differing']} of shape {t['shape']})"
            )
        elif t["status"] in ("shape", "dtype"):
            lines.append(
                f"{path}: tensor {t['name']} {t['status']} {t['original']} -> {t['rerun']}"
            )
        else:
            lines.append(f"{path}: tensor {t['name']} is {t['status']} in {sides[1]}")
    for v in report.get("values", []):
        lines.append(f"{path}: value {v['name']} {v['original']} -> {v['rerun']}")
    return lines or [f"{path}: bytes differ, but every tensor and value is equal"]


def tensor_summary(path: str, report: Mapping[str, Any], sides: tuple[str, str] = RERUN) -> str:
    """``ckpt.pt: 18 of 24 tensors differ, max abs diff 1.37 (model.2.weight); 1 value
    differs (optimizer.param_groups.0.lr)``. A checkpoint's saved random-number state
    (``rng.*``) is counted, but named once rather than by its hundreds of values, and never
    chosen as the largest difference."""
    tensors = list(report.get("tensors") or [])
    values = [v for v in report.get("values") or [] if not _rng(v)]
    rng = len(report.get("values") or []) > len(values) or any(_rng(t) for t in tensors)
    if not tensors and not values and not rng:
        return f"{path}: bytes differ, but every tensor and value is equal"
    parts = []
    if tensors:
        total = report.get("tensor_count")
        known = isinstance(total, int) and not isinstance(total, bool) and total >= len(tensors)
        of = f" of {total}" if known else ""
        nouns = "tensor" if (total if known else len(tensors)) == 1 else "tensors"
        part = f"{len(tensors)}{of} {nouns} {'differs' if len(tensors) == 1 else 'differ'}"
        changed = [t for t in tensors if t["status"] == "changed"]
        changed = [t for t in changed if not _rng(t)] or changed
        if changed:
            worst = max(changed, key=lambda t: _magnitude(t.get("max_abs_diff")))
            part += f", max abs diff {_g(worst.get('max_abs_diff'))} ({worst['name']})"
        odd = [t for t in tensors if t["status"] != "changed"]
        if odd:
            kinds = sorted({str(t["status"]) for t in odd})
            part += f"; {len(odd)} {'/'.join(kinds)} (in {sides[1]})"
        parts.append(part)
    if values:
        names = ", ".join(str(v["name"]) for v in values[:3]) + (" ..." if len(values) > 3 else "")
        verb = "value differs" if len(values) == 1 else "values differ"
        parts.append(f"{len(values)} {verb} ({names})")
    if rng:
        parts.append("the saved random-number state differs")
    return f"{path}: {'; '.join(parts)}"


def _g(value: Any) -> str:
    """A difference as ``.3g``; "?" where the report gave none."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.3g}" if ok else "?"


def _rng(entry: Mapping[str, Any]) -> bool:
    return str(entry.get("name", "")).startswith("rng.")


def _magnitude(value: Any) -> float:
    import math

    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return -1.0
    return float(value)


# --- the target machine --------------------------------------------------------------------
@dataclass(frozen=True)
class TargetDifference:
    field: str
    original: Any
    current: Any
    voids: bool  # True: bitwise reproducibility is not guaranteed across this difference

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "original": self.original,
            "current": self.current,
            "voids": self.voids,
        }

    def describe(self) -> str:
        kind = "voids the bitwise guarantee" if self.voids else "noted"
        return f"{self.field}: {self.original!r} -> {self.current!r} ({kind})"


def _gpu_view(host: Mapping[str, Any], runtime: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    gpus = [dict(g) for g in (host.get("gpu") or {}).get("gpus") or []]
    devices = ((runtime or {}).get("torch") or {}).get("devices") or []
    for gpu, device in zip(gpus, devices, strict=False):
        gpu.setdefault("sm_count", device.get("sm_count"))
    return gpus


def target_differences(
    original_host: Mapping[str, Any],
    original_runtime: Mapping[str, Any] | None,
    current_host: Mapping[str, Any],
    *,
    uses_gpu: bool,
) -> list[TargetDifference]:
    """What differs between the machine a run was made on and this one, and what that voids.

    cuBLAS/cuDNN results are bitwise reproducible only on the same GPU architecture with the
    same SM count; CPU kernels (oneDNN, MKL, OpenBLAS) pick code paths by CPU model.
    """
    diffs: list[TargetDifference] = []

    def check(field: str, a: Any, b: Any, voids: bool) -> None:
        if a != b:
            diffs.append(TargetDifference(field, a, b, voids))

    check("cpu architecture", original_host.get("arch"), current_host.get("arch"), True)
    check("cpu model", original_host.get("cpu"), current_host.get("cpu"), not uses_gpu)
    a_gpus = _gpu_view(original_host, original_runtime)
    b_gpus = _gpu_view(current_host, None)
    if uses_gpu or a_gpus or b_gpus:
        check("gpu count", len(a_gpus), len(b_gpus), uses_gpu)
        for i, (ga, gb) in enumerate(zip(a_gpus, b_gpus, strict=False)):
            check(f"gpu {i} model", ga.get("name"), gb.get("name"), uses_gpu)
            check(
                f"gpu {i} compute capability",
                ga.get("compute_capability"),
                gb.get("compute_capability"),
                uses_gpu,
            )
            if gb.get("sm_count") is not None:
                check(f"gpu {i} SM count", ga.get("sm_count"), gb.get("sm_count"), uses_gpu)
            check(f"gpu {i} driver", ga.get("driver"), gb.get("driver"), False)
        check(
            "cuda (driver)",
            (original_host.get("gpu") or {}).get("cuda"),
            (current_host.get("gpu") or {}).get("cuda"),
            False,
        )
    check(
        "docker version",
        original_host.get("docker_version"),
        current_host.get("docker_version"),
        False,
    )
    return diffs


# --- records -------------------------------------------------------------------------------
def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}{key}."))
        return out
    return {prefix[:-1] if prefix else "<root>": value}


def diff_mappings(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    fa, fb = flatten(dict(a)), flatten(dict(b))
    out = []
    for key in sorted(fa.keys() | fb.keys()):
        va, vb = fa.get(key, _MISSING), fb.get(key, _MISSING)
        if va != vb:
            out.append(
                {
                    "key": key,
                    "a": None if va is _MISSING else va,
                    "b": None if vb is _MISSING else vb,
                    "only_in": "a" if vb is _MISSING else "b" if va is _MISSING else None,
                }
            )
    return out
