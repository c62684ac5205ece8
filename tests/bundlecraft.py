"""Craft bundles by hand, well-formed or hostile, for the bundle reader's tests."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import zstandard

from reprise.core.bundleformat import HEADER_NAME, Header, IndexEntry, padding


@dataclass
class Member:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # header size, when it should lie about the data
    mode: int = 0o644
    pax: dict[str, str] = field(default_factory=dict)  # extended header records

    def encode(self) -> bytes:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.linkname = self.linkname
        info.mode = self.mode
        info.size = len(self.data) if self.size is None else self.size
        if self.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            info.size = 0 if self.size is None else self.size
        info.pax_headers = dict(self.pax)
        head = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        return head + self.data + padding(len(self.data))


@dataclass
class Crafted:
    members: list[Member]
    image: dict[str, Any] = field(
        default_factory=lambda: {"id": "sha256:" + "0" * 64, "diff_ids": []}
    )
    run_id: str = "20260101-000000-00000000"
    experiment: str = "exp"
    # Change the index after it is computed from the members.
    tamper: Callable[[list[IndexEntry]], list[IndexEntry]] = lambda index: index

    def index(self) -> list[IndexEntry]:
        out: dict[str, IndexEntry] = {}
        for m in self.members:
            if m.type == tarfile.DIRTYPE:
                name = m.name.rstrip("/") + "/"
                out.setdefault(name, IndexEntry(name, "dir", 0, None, 0o755))
            else:
                out.setdefault(
                    m.name,
                    IndexEntry(
                        m.name, "file", len(m.data), blake3.blake3(m.data).hexdigest(), m.mode
                    ),
                )
        return self.tamper(list(out.values()))

    def write(self, path: Path) -> Path:
        header = Header(
            self.run_id, self.experiment, self.image, tuple(self.index()), False
        ).to_bytes()
        with path.open("wb") as out, zstandard.ZstdCompressor(level=3).stream_writer(out) as zw:
            zw.write(Member(HEADER_NAME, header).encode())  # streamed: a flood of members
            for m in self.members:  # is never all in this process's memory at once
                zw.write(m.encode())
            zw.write(b"\0" * 1024)
        return path


def read_members(path: Path) -> tuple[Header, list[Member]]:
    """Decompress a real bundle into (header, members): to alter it and write it again."""
    header: Header | None = None
    members: list[Member] = []
    with (
        path.open("rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for info in tar:
            data = b""
            if info.isfile():
                src = tar.extractfile(info)
                assert src is not None
                data = src.read()
            if info.name == HEADER_NAME:
                header = Header.parse(data)
                continue
            members.append(Member(info.name, data, info.type, mode=info.mode))
    assert header is not None
    return header, members
