"""Secrets never reach a log line: query credentials, URL passwords, Authorization."""

from __future__ import annotations

import io
import logging

import pytest

from kapa_core.logs import Logger, redact, stream_handler

CASES = [
    ("/kapacitor/v1/ping?u=admin&p=s3cret", "/kapacitor/v1/ping?u=admin&p=[REDACTED]"),
    ("/write?db=x&P=s3cret&rp=r", "/write?db=x&P=[REDACTED]&rp=r"),
    ("/query?password=s3cret#frag", "/query?password=[REDACTED]#frag"),
    ("/api?token=abc.def&x=1", "/api?token=[REDACTED]&x=1"),
    ("http://bob:s3cret@example.com/x", "http://bob:***@example.com/x"),
    ("http://~subscriber:***@127.0.0.1:9092", "http://~subscriber:***@127.0.0.1:9092"),
    ("Authorization: Bearer s3cret", "Authorization: Bearer [REDACTED]"),
    ("{'Authorization': 'Token s3cret'}", "{'Authorization': 'Token [REDACTED]'}"),
    ('authorization="Basic czNjcmV0"', 'authorization="Basic [REDACTED]"'),
    ("http://example.com/?q=1&app=2&top=3", "http://example.com/?q=1&app=2&top=3"),
    ("authorization failed", "authorization failed"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_every_log_line_is_redacted_and_writable() -> None:
    out = io.StringIO()
    handler = stream_handler(out)
    logger = logging.getLogger("kapa_core")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        Logger("http").info("http request", uri="/ping?u=a&p=s3cret", name="bad \ud800 name")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    line = out.getvalue()
    assert "s3cret" not in line and "p=[REDACTED]" in line
    assert "bad \\ud800 name" in line
    line.encode("utf-8")  # no lone surrogate left to break the log file
