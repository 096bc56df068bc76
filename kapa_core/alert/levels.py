"""Alert levels: OK < INFO < WARNING < CRITICAL, named as Kapacitor names them."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown alert level {text!r} (expected OK, INFO, WARNING or "
                             "CRITICAL)") from None
