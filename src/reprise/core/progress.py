"""Progress messages: one type, passed down from the CLI, which decides how to show them."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]
"""Receives one progress line (no trailing newline); the CLI writes it to stderr or drops it."""


def quiet(_: str) -> None:
    """A :data:`Say` that shows nothing."""
    return None
