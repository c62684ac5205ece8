"""Compare two saved tensor files (torch checkpoints, .npy, .npz) tensor by tensor.

Runs inside a run's image, with the torch/NumPy that wrote the files:

    python -m reprise_runtime.compare ORIGINAL RERUN   # prints one JSON object

Nested dicts and lists are flattened to dotted names (``model.0.weight``,
``optimizer.state.0.exp_avg``). Tensors are equal when their bytes are; otherwise the report
gives the max absolute difference.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

NUMPY_SUFFIXES = (".npy", ".npz")


def load(path: str) -> Any:
    if path.endswith(".npy"):
        import numpy as np

        return np.load(path, allow_pickle=False)
    if path.endswith(".npz"):
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an older or richer pickle: the user's own file
        return torch.load(path, map_location="cpu", weights_only=False)


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key in value:
            out.update(flatten(value[key], f"{prefix}{key}."))
    elif isinstance(value, list | tuple) and not _is_array(value):
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}{i}."))
    else:
        out[prefix[:-1] if prefix else "<root>"] = value
    return out


def _to_numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def compare_arrays(a: Any, b: Any) -> dict[str, Any] | None:
    """None when bit-for-bit equal, else what differs."""
    import numpy as np

    na, nb = _to_numpy(a), _to_numpy(b)
    if na.shape != nb.shape:
        return {"status": "shape", "original": list(na.shape), "rerun": list(nb.shape)}
    if na.dtype != nb.dtype:
        return {"status": "dtype", "original": str(na.dtype), "rerun": str(nb.dtype)}
    if na.tobytes() == nb.tobytes():
        return None
    diff: float
    if na.dtype.kind in "biufc":
        da, db = na.astype(np.float64), nb.astype(np.float64)
        both_nan = np.isnan(da) & np.isnan(db)
        delta = np.where(both_nan, 0.0, np.abs(da - db))
        diff = float(np.nanmax(delta)) if delta.size else 0.0
        if math.isnan(diff):
            diff = float("inf")
        differing = int(np.count_nonzero(delta))
    else:
        diff = float("nan")
        differing = -1
    return {
        "status": "changed",
        "max_abs_diff": diff,
        "elements_differing": differing,
        "shape": list(na.shape),
        "dtype": str(na.dtype),
    }


def compare(a: Any, b: Any) -> dict[str, Any]:
    fa, fb = flatten(a), flatten(b)
    tensors: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for name in sorted(fa.keys() | fb.keys()):
        if name not in fb:
            tensors.append({"name": name, "status": "missing"})
            continue
        if name not in fa:
            tensors.append({"name": name, "status": "extra"})
            continue
        va, vb = fa[name], fb[name]
        if _is_array(va) and _is_array(vb):
            result = compare_arrays(va, vb)
            if result is not None:
                tensors.append({"name": name, **result})
        elif repr(va) != repr(vb):
            others.append({"name": name, "original": repr(va)[:200], "rerun": repr(vb)[:200]})
    count = sum(1 for n in fa.keys() | fb.keys() if _is_array(fa.get(n)) or _is_array(fb.get(n)))
    return {"loadable": True, "tensors": tensors, "values": others, "tensor_count": count}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m reprise_runtime.compare ORIGINAL RERUN", file=sys.stderr)
        return 2
    try:
        a, b = load(argv[0]), load(argv[1])
    except Exception as exc:  # noqa: BLE001 - not a tensor file: say so, as data
        print(json.dumps({"loadable": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 0
    print(json.dumps(compare(a, b), sort_keys=True, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
