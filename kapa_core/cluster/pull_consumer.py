"""Durable pull consumers of the NATS bridge: fetched messages and their acknowledgement.

A consumer's position lives on the JetStream servers (replicated with its stream), not
here: binding again to the same durable name, from this member or another, resumes after
the last acknowledged message. Made by :meth:`NatsBridge.pull_consumer
<kapa_core.cluster.bridge.NatsBridge.pull_consumer>`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

if TYPE_CHECKING:
    from kapa_core.cluster.bridge import NatsBridge


@dataclass(frozen=True, eq=False)
class Message:
    """A message a pull consumer fetched. ``seq`` is its stream sequence, ``delivered``
    how many times it has been delivered (more than 1: redelivered). Acknowledge it with
    :meth:`ack` once processed; without an ack it comes back after the ``ack_wait``."""

    subject: str
    data: bytes
    headers: dict[str, str]
    seq: int
    delivered: int
    pending: int  # messages left for the consumer after this one
    _msg: Msg = field(repr=False)
    _consumer: PullConsumer = field(repr=False)

    async def ack(self) -> None:
        """Acknowledge, and wait until the server confirms it (so a member that dies right
        after does not get this message again)."""
        await self._consumer._settle(self, self._msg.ack_sync(), "ack")

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery, now or after ``delay`` seconds."""
        await self._consumer._settle(self, self._msg.nak(delay), "nak")

    async def in_progress(self) -> None:
        """Still working on it: restart the ``ack_wait`` clock."""
        await self._consumer._settle(self, self._msg.in_progress(), "in-progress")

    async def term(self) -> None:
        """Never deliver this message again (e.g. it cannot be decoded)."""
        await self._consumer._settle(self, self._msg.term(), "term")


class PullConsumer:
    """A bound durable pull consumer; see :meth:`NatsBridge.pull_consumer`."""

    def __init__(self, bridge: NatsBridge, sub: JetStreamContext.PullSubscription,
                 stream: str, durable: str) -> None:
        self._bridge = bridge
        self._sub = sub
        self.stream = stream
        self.durable = durable

    def __repr__(self) -> str:
        return f"PullConsumer({self.stream!r}, {self.durable!r})"

    async def fetch(self, batch: int = 1,
                    timeout: float = 5.0) -> list[Message]:  # noqa: ASYNC109 (the server's)
        """Up to ``batch`` messages, waiting at most ``timeout`` seconds for the first;
        an empty list when none came."""
        msgs = await self._bridge._call(f"fetch from {self._what()}",
                                        self._fetch(batch, timeout))
        return [self._message(msg) for msg in msgs]

    async def _fetch(self, batch: int, expires: float) -> list[Msg]:
        try:
            return await self._sub.fetch(batch, expires)
        except nats.errors.TimeoutError:
            return []

    async def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge several messages in one go, waiting for the server's confirmations."""
        async def ack_all() -> None:
            await asyncio.gather(*(message._msg.ack_sync() for message in messages))
        await self._bridge._call(f"ack on {self._what()}", ack_all())

    async def close(self) -> None:
        """Stop receiving (the durable consumer stays on the server)."""
        await self._bridge._call(f"unsubscribe {self._what()}", self._sub.unsubscribe())

    def _what(self) -> str:
        return f"consumer {self.durable!r} on stream {self.stream!r}"

    def _message(self, msg: Msg) -> Message:
        meta = msg.metadata
        return Message(msg.subject, msg.data, dict(msg.headers or {}), meta.sequence.stream,
                       meta.num_delivered, meta.num_pending, msg, self)

    async def _settle(self, message: Message, coro: Coroutine[Any, Any, object],
                      verb: str) -> None:
        await self._bridge._call(f"{verb} of message {message.seq} on {self._what()}", coro)


__all__ = ["Message", "PullConsumer"]
