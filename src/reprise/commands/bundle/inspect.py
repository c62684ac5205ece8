"""`reprise bundle inspect`: a bundle's header and index, reading only its first member."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

from reprise.core.bundleformat import COPY_CHUNK, HEADER_LIMIT, HEADER_NAME, BoundedTarFile, Header
from reprise.core.errors import BundleError
from reprise.core.progress import Meter


class _Counted:
    """A file read through, each chunk's size told to a meter."""

    def __init__(self, fh: Any, meter: Meter) -> None:
        self.fh, self.meter = fh, meter

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.fh.read(size)
        self.meter(len(data))
        return data

    def close(self) -> None:
        self.fh.close()


def open_stream(path: Path, meter: Meter | None = None) -> Any:
    """The bundle's tar stream, decompressed; ``meter`` counts the file's bytes as read."""
    import zstandard

    try:
        fh = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise BundleError(f"no bundle at {path}", hint="check the path") from None
    except OSError as exc:
        raise BundleError(
            f"{path} cannot be read: {exc.strerror or exc}", hint="check the path"
        ) from None
    source: Any = fh
    if meter is not None:
        meter.start(os.fstat(fh.fileno()).st_size)
        source = _Counted(fh, meter)
    return zstandard.ZstdDecompressor().stream_reader(source, read_size=1 << 20, closefd=True)


def stream_error(exc: BaseException, path: Path) -> BundleError:
    return BundleError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})")


def read_first_header(tar: tarfile.TarFile, path: Path) -> Header:
    first = tar.next()
    if first is None or first.name != HEADER_NAME:
        raise BundleError(f"{path} does not start with {HEADER_NAME}: not a reprise bundle")
    if not first.isfile() or first.size > HEADER_LIMIT:
        raise BundleError(
            f"{path}: the bundle header is not a file of sane size", member=HEADER_NAME
        )
    src = tar.extractfile(first)
    assert src is not None
    return Header.parse(src.read())


def read_header(path: Path) -> Header:
    """The bundle's header and index, reading only its first member."""
    import zstandard

    try:
        with (
            open_stream(path) as stream,
            BoundedTarFile.open(fileobj=stream, mode="r|", bufsize=COPY_CHUNK) as tar,
        ):
            return read_first_header(tar, path)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise stream_error(exc, path) from exc


def describe(header: Header) -> dict[str, Any]:
    kinds: dict[str, dict[str, int]] = {}
    for m in header.members:
        part = m.path.split("/", 1)[0]
        k = kinds.setdefault(part, {"files": 0, "bytes": 0})
        k["files"] += m.kind == "file"
        k["bytes"] += m.size
    return {
        "run_id": header.run_id,
        "experiment": header.experiment,
        "image": header.image,
        "with_outputs": header.with_outputs,
        "parts": kinds,
        "members": [m.to_dict() for m in header.members],
    }
