"""Hashing a run's large outputs says what it hashes and how fast (through ``say``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.edges import hashing


def test_large_files_are_named_and_the_walk_reports_bytes_and_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "LARGE", 1 << 20)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/big.bin").write_bytes(b"x" * (3 << 20))
    (tmp_path / "outputs/small.txt").write_text("hi")
    said: list[str] = []
    manifest = hashing.manifest_of_run(tmp_path, said.append)
    assert [e.path for e in manifest.files] == ["outputs/big.bin", "outputs/small.txt"]
    assert said[0] == "hashing outputs/big.bin (3.0 MiB)"
    assert said[1].startswith("hashed 3.0 MiB of outputs in ") and said[1].endswith("/s)")
    said.clear()
    monkeypatch.setattr(hashing, "LARGE", 1 << 30)
    hashing.manifest_of_run(tmp_path, said.append)
    assert said == []  # small outputs: nothing said
