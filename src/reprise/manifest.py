"""Hash manifests of a run's outputs, and their comparison.

Hashing is blake3: multi-threaded and memory-mapped for large files, a plain read for small
ones. Building and comparing manifests are pure functions over their inputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise import keys

ALGORITHM = "blake3"
_MMAP_THRESHOLD = 1 << 20


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    hash: str


@dataclass(frozen=True)
class Manifest:
    algorithm: str
    files: tuple[Entry, ...]

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.files}

    def to_json(self) -> str:
        data = {
            "algorithm": self.algorithm,
            "files": [{"hash": e.hash, "path": e.path, "size": e.size} for e in self.files],
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ValueError("a manifest is an object with a 'files' list")
        entries = []
        for item in data["files"]:
            if not isinstance(item, dict):
                raise ValueError("a manifest entry is an object")
            path, size, digest = item.get("path"), item.get("size"), item.get("hash")
            if (
                not isinstance(path, str)
                or not isinstance(size, int)
                or not isinstance(digest, str)
            ):
                raise ValueError(f"malformed manifest entry: {item!r}")
            entries.append(Entry(path, size, digest))
        return cls(
            str(data.get("algorithm", ALGORITHM)), tuple(sorted(entries, key=lambda e: e.path))
        )


def hash_file(path: Path, size: int | None = None) -> str:
    """blake3 of a file: a plain read when small; memory-mapped and multi-threaded when large."""
    import blake3

    if size is None:
        size = path.stat().st_size
    if size >= _MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return str(hasher.hexdigest())
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, max(size, 1 << 16)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return str(blake3.blake3(b"".join(chunks)).hexdigest())


def scan_files(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file under ``root``; symlinks are not followed."""
    found: list[tuple[str, int]] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(f"{root}/{rel_dir}" if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    found.append((rel, entry.stat(follow_symlinks=False).st_size))
    return sorted(found)


def _is_record(rel: str) -> bool:
    return rel in keys.RUN_RECORD_FILES or rel.startswith(keys.RUN_RUNTIME_DIR + "/")


def produced_files(run_dir: Path) -> list[str]:
    """Every regular file under ``run_dir`` that the job produced (reprise's records excluded)."""
    return [rel for rel, _ in scan_files(run_dir) if not _is_record(rel)]


def hash_entries(root: Path, files: Iterable[tuple[str, int]]) -> Manifest:
    """Hash files one after the other: small ones cost a read each (threads would only fight
    over the GIL), large ones use every core through blake3's own threads."""
    entries = [Entry(rel, size, hash_file(root / rel, size)) for rel, size in sorted(files)]
    return Manifest(ALGORITHM, tuple(entries))


def build_manifest(root: Path, paths: Iterable[str]) -> Manifest:
    return hash_entries(root, [(rel, (root / rel).stat().st_size) for rel in paths])


def manifest_of_run(run_dir: Path) -> Manifest:
    return hash_entries(
        run_dir, [(rel, size) for rel, size in scan_files(run_dir) if not _is_record(rel)]
    )


@dataclass(frozen=True)
class ManifestDiff:
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # in the original, not in the rerun
    extra: tuple[str, ...] = ()  # in the rerun, not in the original
    same: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "changed": list(self.changed),
            "missing": list(self.missing),
            "extra": list(self.extra),
            "same": len(self.same),
        }


def compare_manifests(original: Manifest, rerun: Manifest) -> ManifestDiff:
    """Which files differ between two manifests (same algorithm required to call them equal)."""
    a: Mapping[str, Entry] = original.by_path()
    b: Mapping[str, Entry] = rerun.by_path()
    comparable = original.algorithm == rerun.algorithm
    changed, same = [], []
    for path in sorted(a.keys() & b.keys()):
        ea, eb = a[path], b[path]
        if comparable and ea.hash == eb.hash and ea.size == eb.size:
            same.append(path)
        else:
            changed.append(path)
    return ManifestDiff(
        changed=tuple(changed),
        missing=tuple(sorted(a.keys() - b.keys())),
        extra=tuple(sorted(b.keys() - a.keys())),
        same=tuple(same),
    )
