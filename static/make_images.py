"""Draws the sample site's cover images (static/images/*.png): a gradient and a few rings
per category, so the first `digest preview` shows real pictures. Standard library only:
`python static/make_images.py` writes them again, byte for byte."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT = 600, 300
# name: (top-left colour, bottom-right colour, ring centres as fractions of the size)
IMAGES = {
    "general-ai": ((11, 87, 208), (126, 87, 194), [(0.72, 0.45), (0.82, 0.62)]),
    "work": ((0, 121, 107), (139, 195, 74), [(0.25, 0.55)]),
    "research": ((94, 53, 177), (236, 64, 122), [(0.6, 0.3), (0.35, 0.7), (0.8, 0.75)]),
    "tools": ((230, 81, 0), (255, 193, 7), [(0.5, 0.5)]),
    "productivity": ((2, 119, 189), (0, 188, 212), [(0.2, 0.3), (0.75, 0.6)]),
    "policy": ((55, 71, 79), (120, 144, 156), [(0.65, 0.5)]),
}


def pixel(x: int, y: int, start: tuple[int, ...], end: tuple[int, ...],
          rings: list[tuple[float, float]]) -> bytes:
    share = (x / WIDTH + y / HEIGHT) / 2
    colour = [a + (b - a) * share for a, b in zip(start, end, strict=True)]
    for cx, cy in rings:
        distance = math.hypot(x - cx * WIDTH, y - cy * HEIGHT)
        if 60 < distance % 90 < 72:  # concentric rings, lighter
            colour = [c + (255 - c) * 0.35 for c in colour]
    return bytes(round(c) for c in colour)


def png(rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main() -> None:
    folder = Path(__file__).parent / "images"
    folder.mkdir(exist_ok=True)
    for name, (start, end, rings) in IMAGES.items():
        rows = [b"".join(pixel(x, y, start, end, rings) for x in range(WIDTH))
                for y in range(HEIGHT)]
        (folder / f"{name}.png").write_bytes(png(rows))


if __name__ == "__main__":
    main()
