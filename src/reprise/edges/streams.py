"""Byte streams for bundles: a file view of chunk iterators, read-ahead, fast file copies."""

from __future__ import annotations

import io
import os
import queue
import shutil
import threading
from collections.abc import Iterator
from typing import IO, Any

from reprise.core.bundleformat import COPY_CHUNK


def copy_file(src: IO[bytes], dst: IO[bytes]) -> None:
    dst.flush()
    size = os.fstat(src.fileno()).st_size
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - offset)
            if n == 0:
                break
            offset += n
    except OSError:
        src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)
        return
    if offset < size:
        src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)
    dst.seek(0, os.SEEK_END)


class ChunkReader:
    """A file-like view of an iterator of byte chunks (the `docker save` stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) - self.offset < size:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                break
            if self.offset:  # drop what was read already, once per chunk (not per read)
                del self.buffer[: self.offset]
                self.offset = 0
            self.buffer += chunk
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.offset + size)
        data = bytes(self.buffer[self.offset : end])
        self.offset = end
        return data


class Prefetch(io.RawIOBase):
    """Reads ahead from ``source`` in a thread (zstd decompression releases the GIL), so that
    decompressing and hashing or loading run side by side on two cores."""

    def __init__(self, source: IO[bytes], chunk: int = COPY_CHUNK, depth: int = 8) -> None:
        self.queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self.current = memoryview(b"")
        self.done = False
        self.thread = threading.Thread(target=self._fill, args=(source, chunk), daemon=True)
        self.thread.start()

    def _fill(self, source: IO[bytes], chunk: int) -> None:
        try:
            while data := source.read(chunk):
                self.queue.put(data)
            self.queue.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self.queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.current:
            if self.done:
                return 0
            item = self.queue.get()
            if item is None:
                self.done = True
                return 0
            if isinstance(item, BaseException):
                self.done = True
                raise item
            self.current = memoryview(item)
        n = min(len(buffer), len(self.current))
        buffer[:n] = self.current[:n]
        self.current = self.current[n:]
        return n
