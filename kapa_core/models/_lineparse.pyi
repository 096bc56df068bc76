"""Types of the compiled fast path (kapa_core/models/_lineparse.c)."""

from kapa_core.models.point import Point

def setup(point_type: type[Point], series_cache: dict[bytes, tuple[str, dict[str, str]]],
          strings_cache: dict[bytes, str], /) -> None: ...
def scan(body: bytes | bytearray | memoryview, start: int, end: int, scale: int, now: int,
         database: str, retention_policy: str, points: list[Point] | None, /
         ) -> tuple[int, int]: ...
def line_end(body: bytes | bytearray | memoryview, pos: int, end: int, /) -> int: ...
