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


def hash_file(path: Path) -> str:
    import blake3

    size = path.stat().st_size
    if size >= _MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return str(hasher.hexdigest())
    with path.open("rb") as fh:
        return str(blake3.blake3(fh.read()).hexdigest())


def produced_files(run_dir: Path) -> list[str]:
    """Every regular file under ``run_dir`` that the job produced (reprise's records excluded)."""
    found: list[str] = []
    runtime = keys.RUN_RUNTIME_DIR + "/"
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(run_dir).as_posix()
            if rel in keys.RUN_RECORD_FILES or rel.startswith(runtime):
                continue
            if full.is_file() and not full.is_symlink():
                found.append(rel)
    return sorted(found)


def build_manifest(root: Path, paths: Iterable[str], *, workers: int | None = None) -> Manifest:
    from concurrent.futures import ThreadPoolExecutor

    paths = sorted(paths)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)

    def one(rel: str) -> Entry:
        full = root / rel
        return Entry(rel, full.stat().st_size, hash_file(full))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        entries = list(pool.map(one, paths))
    return Manifest(ALGORITHM, tuple(entries))


def manifest_of_run(run_dir: Path) -> Manifest:
    return build_manifest(run_dir, produced_files(run_dir))


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
