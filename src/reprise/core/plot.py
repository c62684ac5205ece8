"""A tiny, dependency-free PNG line plot of training curves. Deterministic bytes.

No fonts: the colours are named in the model card's legend instead.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence

PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("blue", (31, 119, 180)),
    ("orange", (255, 127, 14)),
    ("green", (44, 160, 44)),
    ("red", (214, 39, 40)),
    ("purple", (148, 103, 189)),
    ("brown", (140, 86, 75)),
)

Series = Sequence[tuple[float, float]]


def _png(width: int, height: int, pixels: bytearray) -> bytes:
    raw = b"".join(
        b"\0" + bytes(pixels[y * width * 3 : (y + 1) * width * 3]) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def plot_series(
    series: Mapping[str, Series], *, width: int = 480, height: int = 240, margin: int = 16
) -> tuple[bytes, dict[str, str]]:
    """PNG bytes with one line per series (each scaled to its own range), and name -> colour."""
    pixels = bytearray(b"\xff" * (width * height * 3))

    def put(x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            i = (y * width + x) * 3
            pixels[i : i + 3] = bytes(color)

    grey = (200, 200, 200)
    for x in range(margin, width - margin):
        put(x, height - margin, grey)
    for y in range(margin, height - margin + 1):
        put(margin, y, grey)
    legend: dict[str, str] = {}
    names = sorted(series)
    xs_all = [x for name in names for x, _ in series[name]]
    if not xs_all:
        return _png(width, height, pixels), legend
    x_lo, x_hi = min(xs_all), max(xs_all)
    for k, name in enumerate(names):
        points = [(x, y) for x, y in series[name] if math.isfinite(y)]
        if not points:
            continue
        color_name, color = PALETTE[k % len(PALETTE)]
        legend[name] = color_name
        y_lo, y_hi = min(y for _, y in points), max(y for _, y in points)

        def to_px(px: float, py: float, lo: float = y_lo, hi: float = y_hi) -> tuple[int, int]:
            fx = (px - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5
            fy = (py - lo) / (hi - lo) if hi > lo else 0.5
            return (
                margin + round(fx * (width - 2 * margin - 1)),
                height - margin - round(fy * (height - 2 * margin - 1)),
            )

        prev = to_px(*points[0])
        for point in points[1:]:
            cur = to_px(*point)
            steps = max(abs(cur[0] - prev[0]), abs(cur[1] - prev[1]), 1)
            for s in range(steps + 1):
                put(
                    prev[0] + round((cur[0] - prev[0]) * s / steps),
                    prev[1] + round((cur[1] - prev[1]) * s / steps),
                    color,
                )
            prev = cur
        if len(points) == 1:
            put(*prev, color)
    return _png(width, height, pixels), legend
