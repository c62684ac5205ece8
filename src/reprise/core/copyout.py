"""What to copy out of the build stage when some packages' layers are reused: the fewest
subtrees that hold everything else, so that a rebuild does not stream a reused package's
hundreds of megabytes only to drop them. Pure: a listing in, a plan out."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_LISTING = 1_000_000  # entries of a build stage's environment


SLACK = 1 << 20  # skipped bytes a subtree may hold and still be streamed whole, filtered


@dataclass(frozen=True)
class Entry:
    """One entry of a listing: its path (relative, no leading slash), kind (``d`` a folder,
    ``f`` a file, ``l`` a link, anything else as find's ``%y`` says) and size in bytes."""

    path: str
    kind: str
    size: int = 0


def parse_listing(text: str) -> list[Entry]:
    """``find ROOT -mindepth 1 -printf '%y %s %P\\0'`` output, as entries; a malformed
    record (no kind or size, an absolute or climbing path) is an error."""
    records = text.split("\0")
    if len(records) > MAX_LISTING + 1:
        raise ValueError(f"more than {MAX_LISTING} entries")
    out = []
    for record in records:
        if not record:
            continue
        fields = record.split(" ", 2)
        if len(fields) != 3 or len(fields[0]) != 1 or not fields[1].isdigit():
            raise ValueError(f"unexpected listing record {record[:200]!r}")
        kind, size, path = fields
        parts = path.split("/")
        if not path or "" in parts or ".." in parts or "." in parts:
            raise ValueError(f"unexpected listing record {record[:200]!r}")
        out.append(Entry(path, kind, int(size)))
    return out


def plan_copy(
    entries: Iterable[Entry], skipped: Callable[[str], bool], slack: int = SLACK
) -> list[str]:
    """The paths to stream (each with everything under it, the caller filtering out the
    skipped files) so that every entry is copied but the non-folders for which ``skipped``
    is true, without streaming more than ``slack`` skipped bytes in any one subtree.
    ``[""]``: the whole root. The caller makes every folder itself."""
    entries = list(entries)
    gone_paths = {e.path for e in entries if e.kind != "d" and skipped(e.path)}
    held: dict[str, int] = {}  # skipped bytes under each folder
    kept: set[str] = set()  # folders holding something that is not skipped
    for entry in entries:
        if entry.kind == "d":
            continue
        gone = entry.path in gone_paths
        parent = posixpath.dirname(entry.path)
        while True:
            if gone:
                held[parent] = held.get(parent, 0) + entry.size
            elif parent in kept:
                break
            else:
                kept.add(parent)
            if not parent:
                break
            parent = posixpath.dirname(parent)
    mixed = {folder for folder, size in held.items() if size > slack}
    if "" not in mixed:
        return [""]
    return sorted(
        e.path
        for e in entries
        if posixpath.dirname(e.path) in mixed
        and e.path not in mixed
        and (e.path in kept if e.kind == "d" else e.path not in gone_paths)
    )
