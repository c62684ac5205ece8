"""Hash manifests of what a run produced, and their comparison. Pure.

Every entry names what it is: a regular ``file`` (its blake3), a ``hardlink`` (a regular file
with more than one link: its blake3; compared as a file, never carried by a bundle), a
``symlink`` (the blake3 of its target text; it is never followed), or a ``fifo``, ``socket``,
``device`` or ``dir-too-deep`` that the job made (named, never opened). A manifest that hit a limit says so
(``complete: false``), and nothing compared against it is called identical.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reprise.core import names
from reprise.core.errors import InvalidNameError

ALGORITHM = "blake3"
KINDS = ("file", "hardlink", "symlink", "fifo", "socket", "device", "dir-too-deep")
# What a kind is compared as: a file's bytes are what they are, however many links it has.
_COMPARED_AS = {"hardlink": "file"}
MAX_ENTRIES = 1_000_000
MAX_BYTES = 512 << 20  # a manifest.json larger than this is refused before it is parsed
_HEX64 = frozenset("0123456789abcdef")
# A record's volatile patterns (the schema says the same): each path of a manifest is matched
# against all of them, so their number and length are bounded.
MAX_VOLATILE = 64
MAX_VOLATILE_LENGTH = 256


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    hash: str | None
    kind: str = "file"
    target: str | None = None  # a symlink's target text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hash": self.hash, "path": self.path, "size": self.size}
        if self.kind != "file":
            data["kind"] = self.kind
        if self.target is not None:
            data["target"] = self.target
        return data


@dataclass(frozen=True)
class Manifest:
    algorithm: str
    files: tuple[Entry, ...]
    complete: bool = True
    note: str | None = None  # why it is incomplete

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.files}

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "algorithm": self.algorithm,
            "files": [e.to_dict() for e in self.files],
        }
        if not self.complete:
            data["complete"] = False
            data["note"] = self.note
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate (every path relative and inside the run, every kind known);
        ValueError says what is wrong."""
        if len(text) > MAX_BYTES:
            raise ValueError(f"a manifest of {len(text)} bytes is over the {MAX_BYTES} limit")
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ValueError("a manifest is an object with a 'files' list")
        if len(data["files"]) > MAX_ENTRIES:
            raise ValueError(f"more than {MAX_ENTRIES} entries")
        entries = [_entry(item) for item in data["files"]]
        algorithm = data.get("algorithm", ALGORITHM)
        if algorithm != ALGORITHM:
            raise ValueError(f"unknown algorithm {algorithm!r}")
        note = data.get("note")
        return cls(
            ALGORITHM,
            tuple(sorted(entries, key=lambda e: e.path)),
            complete=data.get("complete", True) is not False,
            note=str(note)[:1000] if note is not None else None,
        )


def _entry(item: object) -> Entry:
    if not isinstance(item, dict):
        raise ValueError("a manifest entry is an object")
    path, size, digest = item.get("path"), item.get("size"), item.get("hash")
    kind = item.get("kind", "file")
    target = item.get("target")
    try:
        names.relative_path(path, "manifest path")
    except InvalidNameError as exc:
        raise ValueError(exc.message) from None
    ok = (
        kind in KINDS
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and (
            digest is None
            or (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX64)
        )
        and (target is None or (isinstance(target, str) and len(target) <= 4096))
        and (kind not in ("file", "hardlink", "symlink") or digest is not None)
    )
    if not ok:
        raise ValueError(f"malformed manifest entry for {path!r}")
    assert isinstance(size, int)
    return Entry(str(path), size, digest, str(kind), target)


@dataclass(frozen=True)
class ManifestDiff:
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # in the original, not in the rerun
    extra: tuple[str, ...] = ()  # in the rerun, not in the original
    same: tuple[str, ...] = field(default=())
    incomplete: tuple[str, ...] = ()  # notes of the manifests that hit a limit
    volatile: tuple[str, ...] = ()  # recorded, declared volatile: not compared
    original_complete: bool = True
    rerun_complete: bool = True

    @property
    def identical(self) -> bool:
        """Everything compared is the same, and something was compared."""
        return self.equal and bool(self.same)

    @property
    def equal(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.incomplete)

    @property
    def nothing_compared(self) -> bool:
        return self.equal and not self.same

    def outcome(self, same_status: bool = True) -> str:
        """The verdict this comparison supports: ``identical``; ``nothing-compared`` (no
        output at all); ``inconclusive`` (a manifest hit a limit and nothing proves a
        difference: what it left out was never compared); else ``diverged``. Proof of a
        difference: a file both list that differs, a file the original lists and a complete
        rerun lacks (or the reverse), or a rerun that ended otherwise than its original
        (``same_status`` false). A file only one side lists, where the other side's
        manifest is the incomplete one, may only have been left out of it."""
        if not same_status or self.changed:
            return "diverged"
        if (self.missing and self.rerun_complete) or (self.extra and self.original_complete):
            return "diverged"
        if self.incomplete:
            return "inconclusive"
        return "identical" if self.same else "nothing-compared"

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "changed": list(self.changed),
            "missing": list(self.missing),
            "extra": list(self.extra),
            "same": len(self.same),
            "incomplete": list(self.incomplete),
            "volatile": list(self.volatile),
            "nothing_compared": self.nothing_compared,
            "outcome": self.outcome(),
        }


def volatile_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether a path matches any of ``patterns`` (fnmatch, case-sensitive), compiled once
    into one regular expression."""
    if not patterns:
        return lambda _path: False
    if len(patterns) > MAX_VOLATILE or any(len(p) > MAX_VOLATILE_LENGTH for p in patterns):
        raise ValueError(
            f"at most {MAX_VOLATILE} volatile patterns of {MAX_VOLATILE_LENGTH} characters"
        )
    match = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    return lambda path: match(path) is not None


def _compared(entry: Entry) -> tuple[str, str | None, int]:
    return _COMPARED_AS.get(entry.kind, entry.kind), entry.hash, entry.size


def compare_manifests(
    original: Manifest, rerun: Manifest, volatile: Sequence[str] = ()
) -> ManifestDiff:
    """Which entries differ between two manifests (kind, size and hash must all agree).
    Paths matching a ``volatile`` pattern are recorded in both, and not compared."""
    a: Mapping[str, Entry] = original.by_path()
    b: Mapping[str, Entry] = rerun.by_path()
    is_volatile = volatile_matcher(volatile)
    skipped = {p for p in a.keys() | b.keys() if is_volatile(p)}
    a = {p: e for p, e in a.items() if p not in skipped}
    b = {p: e for p, e in b.items() if p not in skipped}
    comparable = original.algorithm == rerun.algorithm
    changed, same = [], []
    for path in sorted(a.keys() & b.keys()):
        ea, eb = a[path], b[path]
        if comparable and _compared(ea) == _compared(eb):
            same.append(path)
        else:
            changed.append(path)
    incomplete = [
        f"{which}: {m.note or 'incomplete'}"
        for which, m in (("original", original), ("rerun", rerun))
        if not m.complete
    ]
    return ManifestDiff(
        changed=tuple(changed),
        missing=tuple(sorted(a.keys() - b.keys())),
        extra=tuple(sorted(b.keys() - a.keys())),
        same=tuple(same),
        incomplete=tuple(incomplete),
        volatile=tuple(sorted(skipped)),
        original_complete=original.complete,
        rerun_complete=rerun.complete,
    )
