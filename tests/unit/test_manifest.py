from __future__ import annotations

from pathlib import Path

import blake3

from reprise.manifest import (
    Entry,
    Manifest,
    build_manifest,
    compare_manifests,
    hash_file,
    manifest_of_run,
    produced_files,
)


def test_hash_small_and_large_files(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    large = tmp_path / "large"
    data = bytes(range(256)) * (5 * 4096 + 7)
    large.write_bytes(data)
    assert hash_file(small) == blake3.blake3(b"hello").hexdigest()
    assert hash_file(large) == blake3.blake3(data).hexdigest()


def test_produced_files_skip_records(tmp_path: Path) -> None:
    for rel in [
        "run.json",
        "config.yaml",
        "logs/run.log",
        "runtime/runtime.json",
        "manifest.json",
        "outputs/a.txt",
        "logs/metrics.jsonl",
        "checkpoints/x/final.pt",
        "extra.txt",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert produced_files(tmp_path) == [
        "checkpoints/x/final.pt",
        "extra.txt",
        "logs/metrics.jsonl",
        "outputs/a.txt",
    ]


def test_manifest_roundtrip_and_order(tmp_path: Path) -> None:
    for name in ["b", "a", "c/d"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    m = build_manifest(tmp_path, ["c/d", "b", "a"])
    assert [e.path for e in m.files] == ["a", "b", "c/d"]
    assert Manifest.from_json(m.to_json()) == m
    assert m.to_json() == manifest_of_run(tmp_path).to_json()


def _m(*entries: tuple[str, str]) -> Manifest:
    return Manifest("blake3", tuple(Entry(p, 1, h) for p, h in entries))


def test_compare_identical() -> None:
    diff = compare_manifests(_m(("a", "1"), ("b", "2")), _m(("a", "1"), ("b", "2")))
    assert diff.identical
    assert diff.same == ("a", "b")


def test_compare_changed_missing_extra() -> None:
    diff = compare_manifests(
        _m(("a", "1"), ("b", "2"), ("c", "3")), _m(("a", "1"), ("b", "X"), ("d", "4"))
    )
    assert not diff.identical
    assert diff.changed == ("b",)
    assert diff.missing == ("c",)
    assert diff.extra == ("d",)


def test_different_algorithms_never_compare_equal() -> None:
    a = Manifest("blake3", (Entry("a", 1, "h"),))
    b = Manifest("sha256", (Entry("a", 1, "h"),))
    assert compare_manifests(a, b).changed == ("a",)
