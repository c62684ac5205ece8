"""The bundle format: one zstd-compressed tar stream, index first. Pure; no engine, no run store.

    reprise-bundle.json      the header: format, run id, image id and layer diff ids, and the
                             index of every other member (path, kind, size, blake3)
    run/...                  the run's records (and, with --with-outputs, what it produced)
    code/...                 the code at the recorded commit (the patch is run/code.patch)
    image/...                the members of `docker save` of the run's image

Members are written with fixed headers (mtime 0, owner 0:0, fixed modes) in a fixed order, so
exporting the same run twice gives the same bytes. Readers treat a bundle as hostile: every
name, type, size and hash is checked against the index before anything is used.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import blake3

from reprise.core import names
from reprise.core.errors import BundleError, InvalidNameError
from reprise.core.record import load_json

FORMAT = "reprise-bundle/1"
HEADER_NAME = "reprise-bundle.json"
HEADER_LIMIT = 32 << 20  # the header is parsed in memory: bounded before it is read
MAX_MEMBERS = 500_000
EXTENDED_HEADER_LIMIT = 64 << 10  # a PAX or GNU long-name record; ours are a few hundred bytes
MAX_EXTENDED_CHAIN = 4  # extended headers in a row before one member; tar writes at most two
PREFIXES = ("run/", "code/", "image/")
BLOCK = 512
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class IndexEntry:
    path: str
    kind: str  # "file" or "dir"
    size: int
    hash: str | None  # blake3 hex of the content; None for directories
    mode: int = 0o644

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "hash": self.hash,
            "mode": self.mode,
        }


@dataclass(frozen=True)
class Header:
    run_id: str
    experiment: str
    image: dict[str, Any]
    members: tuple[IndexEntry, ...]
    with_outputs: bool

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "image": self.image,
            "with_outputs": self.with_outputs,
            "members": [m.to_dict() for m in self.members],
        }
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes) -> Header:
        try:
            data = load_json(raw, limit=HEADER_LIMIT, what="the bundle header")
        except ValueError as exc:
            raise BundleError(str(exc), member=HEADER_NAME) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise BundleError(f"not a {FORMAT} bundle (format: {found!r})", member=HEADER_NAME)
        try:
            if len(data["members"]) > MAX_MEMBERS:
                raise BundleError(
                    f"the bundle lists more than {MAX_MEMBERS} members", member=HEADER_NAME
                )
            members = []
            for item in data["members"]:
                entry = IndexEntry(
                    path=str(item["path"]),
                    kind=str(item["kind"]),
                    size=int(item["size"]),
                    hash=None if item["hash"] is None else str(item["hash"]),
                    mode=int(item.get("mode", 0o644)),
                )
                check_name(entry.path)
                if entry.kind not in ("file", "dir") or entry.size < 0:
                    raise BundleError(f"index entry {entry.path!r} is malformed", member=entry.path)
                members.append(entry)
            image = dict(data["image"])
            names.run_id(data["run_id"], "the bundle's run id")
            names.experiment(data["experiment"], "the bundle's experiment")
            names.image_id(image["id"], "the bundle's image id")
            diff_ids = image.get("diff_ids") or []
            if not isinstance(diff_ids, list) or len(diff_ids) > 4096:
                raise BundleError("the bundle's image lists no sane diff ids", member=HEADER_NAME)
            for diff_id in diff_ids:
                names.image_id(diff_id, "the bundle's layer diff id")
            header = cls(
                run_id=str(data["run_id"]),
                experiment=str(data["experiment"]),
                image=image,
                members=tuple(members),
                with_outputs=bool(data.get("with_outputs", False)),
            )
        except InvalidNameError as exc:
            raise BundleError(
                f"the bundle header is hostile: {exc.message}", member=HEADER_NAME
            ) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(
                f"the bundle header is malformed: {exc!r}", member=HEADER_NAME
            ) from exc
        seen: set[str] = set()
        for m in header.members:
            if m.path in seen:
                raise BundleError(f"the index lists {m.path!r} twice", member=m.path)
            seen.add(m.path)
        return header

    def by_path(self) -> dict[str, IndexEntry]:
        return {m.path: m for m in self.members}


def check_name(name: str) -> str:
    """A member name must be relative, normalized, inside one of the known folders."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise BundleError(f"member {name!r} has an absolute or malformed path", member=name)
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BundleError(f"member {name!r} has a '..' or empty path component", member=name)
    if posixpath.normpath(name.rstrip("/")) != name.rstrip("/"):
        raise BundleError(f"member {name!r} has a path that is not normalized", member=name)
    if name != HEADER_NAME and not name.startswith(PREFIXES):
        raise BundleError(f"member {name!r} is outside run/, code/ and image/", member=name)
    if name.startswith("code/") and any(part.lower() == ".git" for part in parts):
        # git would take it for the code's own repository, with its config's commands
        raise BundleError(
            f"member {name!r} is inside a .git folder: code carries none", member=name
        )
    return name


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses, before reading them, extended records (PAX, GNU long names)
    over EXTENDED_HEADER_LIMIT, global PAX headers and GNU sparse members: tarfile would read
    a PAX record of any declared size into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        extended = (
            tarfile.XHDTYPE,
            tarfile.SOLARIS_XHDTYPE,
            tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK,
        )
        if self.type in extended and self.size > EXTENDED_HEADER_LIMIT:
            raise BundleError(
                f"an extended tar header of {self.size} bytes (limit {EXTENDED_HEADER_LIMIT})",
                member=self.name,
            )
        if self.type in (tarfile.XGLTYPE, tarfile.GNUTYPE_SPARSE):
            raise BundleError(
                f"a {'global PAX header' if self.type == tarfile.XGLTYPE else 'sparse member'}: bundles carry neither",
                member=self.name,
            )
        if self.type not in extended:
            member: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
            return member
        # tarfile reads the member an extended header describes by recursing: a chain of
        # them would exhaust the stack (a 1 KB archive of 1,500 headers did)
        depth = getattr(tarfile_, "_reprise_extended", 0) + 1
        if depth > MAX_EXTENDED_CHAIN:
            raise BundleError(
                f"more than {MAX_EXTENDED_CHAIN} extended headers in a row", member=self.name
            )
        tarfile_._reprise_extended = depth  # type: ignore[attr-defined]
        try:
            found: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
        finally:
            tarfile_._reprise_extended = depth - 1  # type: ignore[attr-defined]
        return found


class BoundedTarFile(tarfile.TarFile):
    """A tar read as a stream (``BoundedTarFile.open(fileobj=..., mode="r|")``) with
    BoundedTarInfo headers, keeping no member it has passed: tarfile keeps every one
    (with its extended header), and a bundle of a few MB could make that tens of GB."""

    tarinfo = BoundedTarInfo

    def next(self) -> tarfile.TarInfo | None:
        self.members.clear()  # type: ignore[attr-defined]  # a stream never goes back to them
        return super().next()


def check_type(info: tarfile.TarInfo) -> None:
    """Only regular files and directories: links, devices and FIFOs are refused."""
    if info.issym() or info.islnk():
        target = info.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(info.name), target))
        leaves = (
            target.startswith("/") or resolved.startswith("..") or not resolved.startswith(PREFIXES)
        )
        kind = "symlink" if info.issym() else "hard link"
        if leaves:
            raise BundleError(
                f"{kind} {info.name!r} -> {target!r} leaves the bundle", member=info.name
            )
        raise BundleError(
            f"{kind} {info.name!r} -> {target!r}: bundles carry no links", member=info.name
        )
    if info.ischr() or info.isblk():
        raise BundleError(f"member {info.name!r} is a device node", member=info.name)
    if info.isfifo():
        raise BundleError(f"member {info.name!r} is a FIFO", member=info.name)
    if not (info.isfile() or info.isdir()):
        raise BundleError(
            f"member {info.name!r} has an unsupported type {info.type!r}", member=info.name
        )


# --- writing -----------------------------------------------------------------------------
def member_header(name: str, size: int, *, mode: int = 0o644, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mode = mode
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


class MemberWriter:
    """Writes tar members (no end-of-archive marker until ``finish``) and indexes them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.index: list[IndexEntry] = []

    def add_bytes(self, name: str, data: bytes, *, mode: int = 0o644) -> None:
        self.out.write(member_header(name, len(data), mode=mode))
        self.out.write(data)
        self.out.write(padding(len(data)))
        self.index.append(
            IndexEntry(name, "file", len(data), blake3.blake3(data).hexdigest(), mode)
        )

    def add_stream(self, name: str, size: int, source: IO[bytes], *, mode: int = 0o644) -> None:
        self.out.write(member_header(name, size, mode=mode))
        hasher = blake3.blake3()
        remaining = size
        while remaining:
            chunk = source.read(min(COPY_CHUNK, remaining))
            if not chunk:
                raise BundleError(f"{name}: the source ended {remaining} bytes early", member=name)
            hasher.update(chunk)
            self.out.write(chunk)
            remaining -= len(chunk)
        self.out.write(padding(size))
        self.index.append(IndexEntry(name, "file", size, hasher.hexdigest(), mode))

    def add_dir(self, name: str) -> None:
        name = name.rstrip("/") + "/"
        self.out.write(member_header(name, 0, mode=0o755, directory=True))
        self.index.append(IndexEntry(name, "dir", 0, None, 0o755))


# --- reading -----------------------------------------------------------------------------
class HashingReader(io.RawIOBase):
    """Reads exactly ``size`` bytes from ``source`` and hashes them."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        self.source = source
        self.remaining = size
        self.hasher = blake3.blake3()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.remaining:
            return 0
        view = memoryview(buffer)[: self.remaining]
        n = self.source.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return 0
        self.hasher.update(view[:n])
        self.remaining -= n
        return int(n)


def iter_chunks(reader: IO[bytes], chunk: int = COPY_CHUNK) -> Iterator[bytes]:
    while True:
        data = reader.read(chunk)
        if not data:
            return
        yield data


def verify_member(entry: IndexEntry, digest: str, read: int) -> None:
    if read != entry.size:
        raise BundleError(
            f"member {entry.path!r} is truncated ({read} of {entry.size} bytes)", member=entry.path
        )
    if digest != entry.hash:
        raise BundleError(
            f"member {entry.path!r} does not match its hash in the index", member=entry.path
        )


def check_against_index(
    info: tarfile.TarInfo, index: dict[str, IndexEntry], seen: set[str]
) -> IndexEntry:
    name = info.name + ("/" if info.isdir() and not info.name.endswith("/") else "")
    check_name(name)
    check_type(info)
    if name in seen:
        raise BundleError(f"member {name!r} appears twice", member=name)
    seen.add(name)
    entry = index.get(name)
    if entry is None:
        raise BundleError(f"member {name!r} is not in the bundle's index", member=name)
    if info.isdir() != (entry.kind == "dir"):
        raise BundleError(
            f"member {name!r} is a {'directory' if info.isdir() else 'file'}, the index says otherwise",
            member=name,
        )
    if info.size > entry.size:
        raise BundleError(
            f"member {name!r} is {info.size} bytes, far larger than the {entry.size} its index says",
            member=name,
        )
    if info.size != entry.size:
        raise BundleError(
            f"member {name!r} is {info.size} bytes, its index says {entry.size}", member=name
        )
    return entry


def missing_members(index: Iterable[IndexEntry], seen: set[str]) -> list[str]:
    return [m.path for m in index if m.path not in seen]
