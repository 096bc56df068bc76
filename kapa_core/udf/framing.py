"""Length-prefixed framing of UDF messages: each message is preceded by its length in
bytes as an unsigned base-128 varint, with nothing between messages.

Only the standard library: the agent (run inside a user's UDF process) and the daemon's
process and socket bridges both use it.
"""

from __future__ import annotations

from collections.abc import Iterator

#: The longest message accepted by default (a frame announcing more is a protocol error:
#: a garbage header would otherwise make the reader wait for gigabytes).
MAX_MESSAGE = 64 * 1024 * 1024
_MAX_VARINT_BYTES = 10


class FramingError(Exception):
    """The byte stream is not a sequence of length-prefixed messages."""


def uvarint(value: int) -> bytes:
    """``value`` (>= 0) as an unsigned base-128 varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    """``payload`` preceded by its length."""
    return uvarint(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into message payloads.

    ``feed(data)`` appends what was read; iterating ``frames()`` yields every complete
    payload received so far (as ``bytes``) and keeps an incomplete tail for the next
    feed. A header longer than ten bytes or announcing more than ``max_message`` bytes
    raises :class:`FramingError`.
    """

    __slots__ = ("_buf", "_pos", "max_message")

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_message = max_message

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received but not yet yielded as a complete message."""
        return len(self._buf) - self._pos

    def frames(self) -> Iterator[bytes]:
        buf = self._buf
        end = len(buf)
        while True:
            pos = self._pos
            if pos >= end:
                return
            # the header
            size = 0
            shift = 0
            i = pos
            while True:
                if i >= end:
                    return  # the header is not complete yet
                b = buf[i]
                i += 1
                size |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if i - pos >= _MAX_VARINT_BYTES:
                    raise FramingError("malformed message length: a varint longer than "
                                       "ten bytes")
            if size > self.max_message:
                raise FramingError(f"message of {size} bytes announced, more than the "
                                   f"{self.max_message} accepted")
            if i + size > end:
                return  # the message is not complete yet
            self._pos = i + size
            yield bytes(buf[i:i + size])


__all__ = ["MAX_MESSAGE", "FrameReader", "FramingError", "frame", "uvarint"]
