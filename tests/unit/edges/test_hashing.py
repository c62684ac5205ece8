from __future__ import annotations

import os
from pathlib import Path

import blake3

from reprise.edges.hashing import MAX_DEPTH, hash_file, manifest_of_run, walk


def test_hash_small_and_large_files(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    large = tmp_path / "large"
    data = bytes(range(256)) * (5 * 4096 + 7)
    large.write_bytes(data)
    assert hash_file(small) == blake3.blake3(b"hello").hexdigest()
    assert hash_file(large) == blake3.blake3(data).hexdigest()


def test_manifest_of_run_covers_the_jobs_folders_only(tmp_path: Path) -> None:
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
    assert [e.path for e in manifest_of_run(tmp_path).files] == [
        "checkpoints/x/final.pt",
        "logs/metrics.jsonl",
        "outputs/a.txt",
    ]


def test_links_fifos_and_depth_are_recorded_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    out = tmp_path / "run" / "outputs"
    out.mkdir(parents=True)
    (out / "link").symlink_to(secret)
    (out / "dirlink").symlink_to(tmp_path)
    os.mkfifo(out / "pipe")
    deep = out
    for _ in range(MAX_DEPTH + 5):
        deep = deep / "d"
    deep.mkdir(parents=True)
    m = walk(tmp_path / "run", ["outputs"])
    by_path = m.by_path()
    assert by_path["outputs/link"].kind == "symlink"
    assert by_path["outputs/link"].target == str(secret)
    assert by_path["outputs/link"].hash == blake3.blake3(str(secret).encode()).hexdigest()
    assert by_path["outputs/dirlink"].kind == "symlink"
    assert by_path["outputs/pipe"].kind == "fifo" and by_path["outputs/pipe"].hash is None
    assert [e.kind for e in m.files if e.kind == "dir-too-deep"] == ["dir-too-deep"]
    assert not any("secret" in e.path for e in m.files)


def test_the_walk_stops_at_its_limit_and_says_so(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"f{i}").write_text("x")
    m = walk(tmp_path, limit=4)
    assert len(m.files) == 4 and not m.complete and "more than 4 entries" in (m.note or "")


def test_hard_links_are_their_own_kind_in_a_runs_manifest_only(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "a.txt").write_text("same bytes")
    os.link(out / "a.txt", out / "b.txt")
    (out / "c.txt").write_text("alone")
    by_path = manifest_of_run(tmp_path).by_path()
    digest = blake3.blake3(b"same bytes").hexdigest()
    assert by_path["outputs/a.txt"].kind == by_path["outputs/b.txt"].kind == "hardlink"
    assert by_path["outputs/a.txt"].hash == digest and by_path["outputs/a.txt"].size == 10
    assert by_path["outputs/c.txt"].kind == "file"
    # A dataset's hash is its content: a hard link there is a file like any other.
    assert {e.kind for e in walk(tmp_path).files} == {"file"}
