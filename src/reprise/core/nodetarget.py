"""Every node's target, rank by rank: what a multi-node run (on Slurm) ran on, as each rank
saw it, and where a rerun's ranks differ from the original's. Pure.

A rank's view joins its node's description (``runtime.json`` "nodes": what the node's part of
the batch script said of the node: CPU model and count, GPUs) with its own runtime record
(``runtime/rank-K.json``: torch's thread count, and the SM count of each GPU it saw). Rank K
runs on node K // ranks-per-node and uses that node's GPU K % ranks-per-node. The values come
from the job (its word): each is kept only if it has the expected type, strings cut short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reprise.core.divergence import TargetDifference

MAX_RANKS = 4096
_TEXT = 256


def _text(value: object) -> str | None:
    return value[:_TEXT] if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None  # type: ignore[return-value]


def _device(record: Mapping[str, Any] | None, index: int) -> Mapping[str, Any]:
    torch = (record or {}).get("torch")
    devices = torch.get("devices") if isinstance(torch, Mapping) else None
    if not isinstance(devices, list) or not devices:
        return {}
    # torchrun ranks usually see every GPU of the node; one that sees only its own has one.
    found = devices[index] if index < len(devices) else devices[0]
    return found if isinstance(found, Mapping) else {}


def rank_views(
    nodes: object,
    ranks: Mapping[int, Mapping[str, Any] | None],
    *,
    world_size: int,
    procs_per_node: int,
) -> list[dict[str, Any]]:
    """One view per rank (0 .. world_size-1): its node's hostname, CPU model and count, its
    GPU's model (and SM count and compute capability when its record says), torch's threads.
    A value nobody said is None."""
    by_node: dict[int, Mapping[str, Any]] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, Mapping) and _count(node.get("node")) is not None:
            by_node.setdefault(int(node["node"]), node)
    views = []
    per_node = max(procs_per_node, 1)
    for rank in range(min(world_size, MAX_RANKS)):
        node_index, local = divmod(rank, per_node)
        node = by_node.get(node_index, {})
        record = ranks.get(rank)
        listed = node.get("gpus")
        gpus: list[Any] = listed if isinstance(listed, list) else []
        gpu = gpus[local] if local < len(gpus) and isinstance(gpus[local], Mapping) else {}
        device = _device(record, local)
        torch = (record or {}).get("torch")
        views.append(
            {
                "rank": rank,
                "node": node_index,
                "hostname": _text(node.get("hostname")),
                "cpu": _text(node.get("cpu")),
                "cpu_count": _count(node.get("cpu_count")),
                "threads": _count(torch.get("num_threads")) if isinstance(torch, Mapping) else None,
                "gpu": _text(gpu.get("name")) or _text(device.get("name")),
                "sm_count": _count(device.get("sm_count")),
                "compute_capability": _text(device.get("capability")),
            }
        )
    return views


# (view key, what it is called, whether a difference voids the guarantee: on CPU, on GPU)
_FIELDS = (
    ("cpu", "cpu model", True, False),
    ("threads", "torch threads", True, False),
    ("cpu_count", "cpu count", False, False),
    ("gpu", "gpu model", False, True),
    ("compute_capability", "gpu compute capability", False, True),
    ("sm_count", "gpu SM count", False, True),
)


def rank_differences(
    original: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    uses_gpu: bool,
) -> list[TargetDifference]:
    """What differs rank by rank, and what that voids (as ``divergence.target_differences``:
    CPU kernels pick code paths by CPU model and thread count, cuBLAS/cuDNN results hold only
    on the same GPU model and SM count). A value one side does not know (None: not asked
    yet, before the job ran; a rank whose record is missing) is not compared."""
    diffs: list[TargetDifference] = []
    if len(original) != len(current):
        diffs.append(TargetDifference("ranks", len(original), len(current), True))
    for a, b in zip(original, current, strict=False):
        where = f"rank {a.get('rank')} (node {a.get('node')})"
        for key, name, on_cpu, on_gpu in _FIELDS:
            if a.get(key) is None or b.get(key) is None or a.get(key) == b.get(key):
                continue
            voids = on_gpu if uses_gpu else on_cpu
            diffs.append(TargetDifference(f"{where} {name}", a.get(key), b.get(key), voids))
    return diffs
