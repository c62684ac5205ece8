"""Progress messages: one type, passed down from the CLI, which decides how to show them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Say = Callable[[str], None]
"""Receives one progress line (no trailing newline); the CLI writes it to stderr or drops it."""


def quiet(_: str) -> None:
    """A :data:`Say` that shows nothing."""
    return None


class Meter(Protocol):
    """Bytes through a long copy: ``start`` with the total (None: unknown), then each
    chunk's size. The CLI draws it (bytes, rate, time left) or not."""

    def start(self, total: int | None) -> None: ...

    def __call__(self, count: int) -> None: ...


class NoMeter:
    """A :class:`Meter` that shows nothing."""

    def start(self, total: int | None) -> None:
        return None

    def __call__(self, count: int) -> None:
        return None
