"""Datasets a run reads (read-only at /workspace/data/<name>): content-hashed and recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.core.errors import ProjectError
from reprise.core.manifest import ALGORITHM, Entry, Manifest
from reprise.edges.hashing import hash_file, walk


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    hash: str  # sha256 of the dataset's manifest (every entry's path, kind, size and blake3)
    files: int
    bytes: int
    prepared: Mapping[str, Any] | None = None  # how a prepare step made it

    def to_record(self) -> dict[str, Any]:
        out = {"path": str(self.path), "hash": self.hash, "files": self.files, "bytes": self.bytes}
        if self.prepared is not None:
            out["prepared"] = dict(self.prepared)
        return out


def hash_dataset(name: str, path: Path) -> Dataset:
    """Hash a dataset the user named: a file, or a folder (links inside it are recorded as
    links, never followed)."""
    if not path.exists():
        raise ProjectError(
            f"dataset {name!r}: {path} does not exist",
            path=str(path),
            hint=f"fix [tool.reprise] data.{name} (relative paths there are resolved against the "
            "folder of its pyproject.toml, not the current directory), or create the folder",
        )
    if path.is_file():
        size = path.stat().st_size
        manifest = Manifest(ALGORITHM, (Entry(path.name, size, hash_file(path)),))
    else:
        manifest = walk(path.resolve(), limit=10_000_000)
    digest = "sha256:" + hashlib.sha256(manifest.to_json().encode()).hexdigest()
    return Dataset(name, path, digest, len(manifest.files), sum(e.size for e in manifest.files))


def hash_datasets(data: Mapping[str, Path]) -> dict[str, Dataset]:
    return {name: hash_dataset(name, path) for name, path in sorted(data.items())}
