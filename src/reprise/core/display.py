"""Text for a person to read: values from records made printable (a record is hostile input:
no control character reaches the terminal), cut with an ellipsis rather than silently,
commands quoted as a shell would, byte counts and counted nouns. Pure."""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Sequence

ELLIPSIS = "…"
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def printable(text: str) -> str:
    """``text`` with every control or format character (newlines, escapes, bidi overrides)
    written as an escape: one line, shown as it is."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char)[0] in "CZ" and char != " ":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, its last one an ellipsis when it was cut."""
    if width < 1 or len(text) <= width:
        return text if width >= 1 else ""
    return text[: width - 1] + ELLIPSIS


def shell_command(argv: Sequence[str]) -> str:
    """A command as a shell would read it back (quoted), on one printable line."""
    return printable(shlex.join(argv))


def human_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``; below 1 KiB, plain bytes."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 image``, ``0 images``, ``2 images``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def number(value: float | None) -> str:
    """A metric value, short: six significant digits; ``-`` for none."""
    return "-" if value is None else f"{value:.6g}"
