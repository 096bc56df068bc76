"""Reads the PNG files Chromium writes (8-bit RGB or RGBA, not interlaced), so that a test
can check a screenshot's size and the colour at a point without an imaging library."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    """Not a PNG this reader understands; the message says what was found."""


@dataclass
class Png:
    width: int
    height: int
    channels: int  # 3 (RGB) or 4 (RGBA)
    raw: bytes  # decompressed: per row, a filter byte then width * channels bytes
    _rows: list[bytes] = field(default_factory=list)  # unfiltered, from the top

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        """The colour at (x, y), as (r, g, b) or (r, g, b, a). Rows are unfiltered down
        to ``y`` only (in pure Python a whole screenshot would take seconds)."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"({x}, {y}) is outside {self.width}x{self.height}")
        stride = self.width * self.channels
        while len(self._rows) <= y:
            n = len(self._rows)
            line = self.raw[n * (stride + 1):(n + 1) * (stride + 1)]
            previous = self._rows[-1] if self._rows else bytes(stride)
            self._rows.append(_unfilter(line[0], line[1:], previous, self.channels, n))
        start = x * self.channels
        return tuple(self._rows[y][start:start + self.channels])


def read_png(source: bytes | Path) -> Png:
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data.startswith(SIGNATURE):
        raise PngError(f"no PNG signature: starts with {data[:8]!r}")
    offset, header, compressed = len(SIGNATURE), b"", bytearray()
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise PngError(f"chunk {kind!r} at byte {offset}: bad CRC")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
        offset += 12 + length
    if len(header) != 13:
        raise PngError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {colour}, "
                       f"interlace {interlace}")
    raw = zlib.decompress(bytes(compressed))
    if len(raw) != height * (width * channels + 1):
        raise PngError(f"{len(raw)} bytes of pixels for {width}x{height}")
    return Png(width, height, channels, raw)


def _unfilter(kind: int, filtered: bytes, previous: bytes, bpp: int, y: int) -> bytes:
    """Undoes one row's PNG filter (None, Sub, Up, Average, Paeth)."""
    if kind == 0:
        return filtered
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(filtered, previous, strict=True))
    if kind not in (1, 3, 4):
        raise PngError(f"row {y}: unknown filter {kind}")
    row = bytearray(filtered)
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        else:
            up_left = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - up_left
            distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
            row[i] = (row[i] + (left, up, up_left)[distances.index(min(distances))]) & 0xFF
    return bytes(row)
