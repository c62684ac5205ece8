"""Every rank's target of a run spread over nodes: its node's description joined with its own
runtime record (both the job's word), and where a rerun's ranks differ from the original's."""

from __future__ import annotations

from typing import Any

from reprise.core.nodetarget import rank_differences, rank_views


def _nodes(cpu: str = "AMD EPYC 7B13", gpu: str | None = None) -> list[dict[str, Any]]:
    gpus = [{"name": gpu}] * 2 if gpu else []
    return [
        {"node": n, "hostname": f"s{n + 1}", "cpu": cpu, "cpu_count": 2, "gpus": gpus}
        for n in (0, 1)
    ]


def _rank(threads: int = 1, sm: int | None = None) -> dict[str, Any]:
    devices = [{"name": "NVIDIA H100", "capability": "9.0", "sm_count": sm}] * 2 if sm else []
    return {"torch": {"num_threads": threads, "devices": devices}}


def test_each_rank_sees_its_nodes_cpu_and_its_own_gpu() -> None:
    views = rank_views(
        _nodes(gpu="NVIDIA H100"),
        {0: _rank(sm=132), 1: _rank(sm=132), 3: _rank(threads=4, sm=114)},
        world_size=4,
        procs_per_node=2,
    )
    assert [(v["rank"], v["node"], v["hostname"]) for v in views] == [
        (0, 0, "s1"),
        (1, 0, "s1"),
        (2, 1, "s2"),
        (3, 1, "s2"),
    ]
    assert views[0]["gpu"] == "NVIDIA H100" and views[0]["sm_count"] == 132
    assert views[3]["threads"] == 4 and views[3]["sm_count"] == 114
    assert views[2]["threads"] is None and views[2]["sm_count"] is None  # no record: unknown


def test_hostile_values_are_dropped_or_cut() -> None:
    nodes: list[Any] = [
        {"node": 0, "cpu": "x" * 10_000, "cpu_count": -1, "gpus": "many"},
        {"node": True, "cpu": "planted"},
        "not a node",
    ]
    ranks: dict[int, Any] = {0: {"torch": {"num_threads": "8", "devices": [7]}}}
    views = rank_views(nodes, ranks, world_size=2, procs_per_node=1)
    assert len(views[0]["cpu"]) == 256 and views[0]["cpu_count"] is None
    assert views[0]["threads"] is None and views[0]["gpu"] is None
    assert views[1]["cpu"] is None  # node True is no node index
    assert rank_views("nodes", {}, world_size=1, procs_per_node=1)[0]["cpu"] is None


def test_a_cpu_runs_ranks_differ_by_cpu_model_and_threads() -> None:
    original = rank_views(_nodes(), {0: _rank(), 1: _rank()}, world_size=2, procs_per_node=1)
    same = rank_differences(original, original, uses_gpu=False)
    assert same == []
    other = rank_views(
        _nodes(cpu="Intel Xeon 8480+"),
        {0: _rank(), 1: _rank(threads=2)},
        world_size=2,
        procs_per_node=1,
    )
    diffs = rank_differences(original, other, uses_gpu=False)
    described = [d.describe() for d in diffs]
    assert (
        "rank 0 (node 0) cpu model: 'AMD EPYC 7B13' -> 'Intel Xeon 8480+' (voids the bitwise guarantee)"
        in described
    )
    assert "rank 1 (node 1) torch threads: 1 -> 2 (voids the bitwise guarantee)" in described
    assert all(d.voids for d in diffs)
    # the same difference on a GPU run is noted only
    assert not any(d.voids for d in rank_differences(original, other, uses_gpu=True))


def test_a_gpu_runs_ranks_differ_by_gpu_model_and_sm_count() -> None:
    original = rank_views(
        _nodes(gpu="NVIDIA H100"),
        {r: _rank(sm=132) for r in range(4)},
        world_size=4,
        procs_per_node=2,
    )
    other = rank_views(
        _nodes(gpu="NVIDIA H100"),
        {r: _rank(sm=114 if r == 3 else 132) for r in range(4)},
        world_size=4,
        procs_per_node=2,
    )
    diffs = rank_differences(original, other, uses_gpu=True)
    assert [(d.field, d.original, d.current, d.voids) for d in diffs] == [
        ("rank 3 (node 1) gpu SM count", 132, 114, True)
    ]
    asked = [{**v, "sm_count": None, "threads": None, "gpu": "NVIDIA A100"} for v in original]
    before = rank_differences(original, asked, uses_gpu=True)  # unknown values: not compared
    assert {d.field.split(") ")[1] for d in before} == {"gpu model"}
    fewer = rank_differences(original, original[:2], uses_gpu=True)
    assert fewer[0].field == "ranks" and fewer[0].voids


def test_a_value_one_side_does_not_know_is_not_compared() -> None:
    known = rank_views(_nodes(), {0: _rank(), 1: _rank()}, world_size=2, procs_per_node=1)
    unknown = rank_views([], {}, world_size=2, procs_per_node=1)
    assert rank_differences(unknown, known, uses_gpu=False) == []
    assert rank_differences(known, unknown, uses_gpu=False) == []
