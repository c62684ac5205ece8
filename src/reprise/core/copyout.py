"""What to copy out of the build stage when some packages' layers are reused: every entry but
the reused packages' files, named one by one, so that a rebuild does not stream a reused
package's hundreds of megabytes only to drop them. Pure: a listing in, a list out."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_LISTING = 1_000_000  # entries of a build stage's environment


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


def entries_to_copy(entries: Iterable[Entry], skipped: Callable[[str], bool]) -> list[str]:
    """The entries to copy but folders (the listing names them all; the packing makes
    them) and those for which ``skipped`` is true, in the listing's order."""
    return [e.path for e in entries if e.kind != "d" and not skipped(e.path)]


def names_list(paths: Iterable[str], prefix: str) -> bytes:
    """``paths`` under ``prefix`` as tar's ``--null -T`` reads them: NUL-terminated."""
    return b"".join(
        (posixpath.join(prefix, p) if p else prefix).encode("utf-8", "surrogateescape") + b"\0"
        for p in paths
    )
