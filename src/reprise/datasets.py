"""Datasets a run mounts read-only at /workspace/data/<name>, content-hashed and recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import ProjectError
from reprise.manifest import hash_entries, scan_files

CONTAINER_DATA = "/workspace/data"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    hash: str  # sha256 of the dataset's manifest (every file's path, size and blake3)
    files: int
    bytes: int

    def to_record(self) -> dict[str, Any]:
        return {"path": str(self.path), "hash": self.hash, "files": self.files, "bytes": self.bytes}


def hash_dataset(name: str, path: Path) -> Dataset:
    if not path.exists():
        raise ProjectError(
            f"dataset {name!r}: {path} does not exist",
            path=str(path),
            hint=f"fix [tool.reprise] data.{name}, or create the folder",
        )
    if path.is_file():
        manifest = hash_entries(path.parent, [(path.name, path.stat().st_size)])
    else:
        manifest = hash_entries(path, scan_files(path))
    digest = "sha256:" + hashlib.sha256(manifest.to_json().encode()).hexdigest()
    return Dataset(name, path, digest, len(manifest.files), sum(e.size for e in manifest.files))


def hash_datasets(data: Mapping[str, Path]) -> dict[str, Dataset]:
    return {name: hash_dataset(name, path) for name, path in sorted(data.items())}


def mount_target(dataset: Dataset) -> str:
    target = f"{CONTAINER_DATA}/{dataset.name}"
    return f"{target}/{dataset.path.name}" if dataset.path.is_file() else target
