"""The NATS bridge against real servers (Debian's nats-server 2.9, JetStream on).

Each test starts the servers it needs (kapa_core.testing.nats) and always stops them:
one server for streams, consumers and key-value buckets; a three-server JetStream cluster
for publishing through the restart and the SIGKILL of a server, where every publish that
returned an acknowledgement must be found in the stream afterwards.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from kapa_core.cluster import ClusterError, ConflictError
from kapa_core.cluster.bridge import KvChange, KvWatch, NatsBridge, PubAck, PullConsumer
from kapa_core.testing.nats import NatsCluster, NatsServer
from tests.integration import pki

pytestmark = pytest.mark.integration


async def fetch_all(consumer: PullConsumer, count: int, *, limit: float = 10.0,
                    ) -> list[tuple[int, bytes]]:
    """(seq, data) of ``count`` messages, acknowledged, or fail after ``limit`` seconds."""
    got: list[tuple[int, bytes]] = []
    with trio.fail_after(limit):
        while len(got) < count:
            messages = await consumer.fetch(min(500, count - len(got)), timeout=1.0)
            await consumer.ack(messages)
            got += [(m.seq, m.data) for m in messages]
    return got


async def changes(watch: KvWatch, count: int) -> list[KvChange]:
    seen: list[KvChange] = []
    with trio.fail_after(10):
        async for change in watch:
            seen.append(change)
            if len(seen) == count:
                break
    return seen


async def test_published_messages_come_back_through_a_durable_consumer() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url], name="test") as nats:
            state = await nats.ensure_stream("POINTS", ["points.>"])
            assert (state.name, state.subjects, state.messages) == ("POINTS", ("points.>",), 0)
            acks = [await nats.publish(f"points.{i % 2}", b"m%d" % i) for i in range(20)]
            assert [a.seq for a in acks] == list(range(1, 21))
            assert {a.stream for a in acks} == {"POINTS"} and not any(a.duplicate for a in acks)
            # the same message id again is recognised, not stored twice
            first = await nats.publish("points.0", b"once", msg_id="batch-7")
            again = await nats.publish("points.0", b"once", msg_id="batch-7")
            assert (again.seq, again.duplicate, first.duplicate) == (first.seq, True, False)
            assert (await nats.stream_state("POINTS")).messages == 21

            consumer = await nats.pull_consumer("POINTS", "task-even", ["points.0"],
                                                ack_wait=1.0)
            messages = await consumer.fetch(50, timeout=1.0)
            assert [m.data for m in messages] == [b"m%d" % i for i in range(0, 20, 2)] + [b"once"]
            assert {m.subject for m in messages} == {"points.0"}
            assert all(m.delivered == 1 for m in messages)
            assert messages[0].pending == len(messages) - 1
            left_out = messages[3]
            await consumer.ack([m for m in messages if m is not left_out])
            # the unacknowledged one comes back after ack_wait, and only it
            again_messages = await consumer.fetch(50, timeout=3.0)
            assert [(m.seq, m.delivered) for m in again_messages] == [(left_out.seq, 2)]
            await again_messages[0].ack()
            assert await consumer.fetch(10, timeout=1.5) == []

            # a trio cancel scope ends a long fetch at once, and the bridge goes on
            started = time.monotonic()
            with trio.move_on_after(0.2):
                await consumer.fetch(1, timeout=30.0)
            assert time.monotonic() - started < 2
            assert (await nats.publish("points.1", b"after")).seq == 22

            # errors say what failed and where, without waiting for anything
            started = time.monotonic()
            with pytest.raises(ClusterError, match=r"publish to 'elsewhere'.*no stream takes"):
                await nats.publish("elsewhere", b"x", timeout=10.0)
            assert time.monotonic() - started < 2
            with pytest.raises(ClusterError, match="several filter subjects need nats-server"):
                await nats.pull_consumer("POINTS", "two", ["points.0", "points.1"])
            with pytest.raises(ClusterError, match="'POINTS' exists with file storage"):
                await nats.ensure_stream("POINTS", ["points.>"], storage="memory")

            # in_progress holds a message past ack_wait; nak returns it at once; term ends it
            await nats.publish("points.2", b"slow")
            slow = await nats.pull_consumer("POINTS", "task-two", ["points.2"], ack_wait=1.0)
            [message] = await slow.fetch(1, timeout=1.0)
            for _ in range(3):
                await trio.sleep(0.5)
                await message.in_progress()
            assert await slow.fetch(1, timeout=0.3) == []
            await message.nak()
            [message] = await slow.fetch(1, timeout=0.5)
            assert (message.data, message.delivered) == (b"slow", 2)
            await message.term()
            assert await slow.fetch(1, timeout=1.5) == []


async def test_messages_published_together_keep_their_order() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url], name="test") as nats:
            await nats.ensure_stream("POINTS", ["points.>"])
            sent = [(f"points.{i % 3}", b"m%d" % i) for i in range(300)]
            results = await nats.publish_many(sent)
            assert all(isinstance(r, PubAck) for r in results)
            assert sorted(r.seq for r in results if isinstance(r, PubAck)) == \
                list(range(1, 301))
            consumer = await nats.pull_consumer("POINTS", "all")
            got = await fetch_all(consumer, 300)
            assert [data for _seq, data in got] == [payload for _, payload in sent]  # in order
            # a subject no stream takes: that message's error, the others stored
            mixed = await nats.publish_many([("points.9", b"ok"), ("elsewhere", b"no")],
                                            timeout=2.0)
            assert isinstance(mixed[0], PubAck)
            assert isinstance(mixed[1], ClusterError) and "no stream" in str(mixed[1])


async def test_a_durable_consumer_resumes_after_reconnecting() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url], reconnect_wait=0.1) as nats:
            await nats.ensure_stream("IN", ["in.>"])
            for i in range(10):
                await nats.publish("in.x", b"%d" % i)
            consumer = await nats.pull_consumer("IN", "owner", ["in.x"], ack_wait=30.0)
            assert await fetch_all(consumer, 5) == [(i + 1, b"%d" % i) for i in range(5)]

            # the server goes away; a publish meanwhile waits for it, then is stored
            await trio.to_thread.run_sync(server.stop)
            async with trio.open_nursery() as nursery:
                late: list[int] = []

                async def publish_late() -> None:
                    late.append((await nats.publish("in.x", b"late", timeout=20.0)).seq)

                nursery.start_soon(publish_late)
                await trio.sleep(0.5)
                assert not late
                await trio.to_thread.run_sync(server.start)
            assert late == [11] and nats.reconnects >= 1

            # acknowledged messages are not delivered again, the rest are
            rest = await fetch_all(consumer, 6)
            assert rest == [(i + 1, b"%d" % i) for i in range(5, 10)] + [(11, b"late")]

        # another connection binding the same durable consumer starts after them too
        async with NatsBridge.connect([server.url]) as nats:
            await nats.publish("in.x", b"new")
            consumer = await nats.pull_consumer("IN", "owner", ["in.x"])
            assert await fetch_all(consumer, 1) == [(12, b"new")]
            assert await consumer.fetch(5, timeout=0.5) == []


async def test_key_value_writes_are_seen_in_order_by_another_connection() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url], name="writer") as writer, \
                NatsBridge.connect([server.url], name="reader") as reader:
            tasks = await writer.kv("tasks", history=5)
            before = await tasks.put("tasks.cpu", b"v1")
            same = await reader.kv("tasks", history=5)
            async with same.watch("tasks.>") as watch:
                with trio.fail_after(5):
                    await watch.caught_up.wait()
                assert await changes(watch, 1) == [KvChange("tasks.cpu", b"v1", before, "PUT")]

                assert await tasks.get("tasks.cpu") == await same.get("tasks.cpu")
                assert (await same.get("tasks.cpu") or pytest.fail("gone")).value == b"v1"
                assert await tasks.get("tasks.none") is None
                with pytest.raises(ConflictError, match=r"create 'tasks\.cpu' in bucket 'tasks'"):
                    await tasks.create("tasks.cpu", b"other")
                r2 = await tasks.update("tasks.cpu", b"v2", before)
                with pytest.raises(ConflictError, match="another write came first"):
                    await same.update("tasks.cpu", b"lost", before)
                r3 = await tasks.create("tasks.mem", b"m1")
                with pytest.raises(ConflictError):
                    await tasks.delete("tasks.mem", last_revision=r2)
                await tasks.delete("tasks.cpu")
                r5 = await tasks.create("tasks.cpu", b"again")  # create after a delete
                await tasks.put("other.key", b"not watched")

                seen = await changes(watch, 4)
                assert [(c.key, c.value, c.operation) for c in seen] == [
                    ("tasks.cpu", b"v2", "PUT"), ("tasks.mem", b"m1", "PUT"),
                    ("tasks.cpu", None, "DEL"), ("tasks.cpu", b"again", "PUT")]
                assert [seen[0].revision, seen[1].revision, seen[3].revision] == [r2, r3, r5]
                assert seen[2].revision == r3 + 1
            assert sorted(await same.keys()) == ["other.key", "tasks.cpu", "tasks.mem"]
            assert await same.keys("tasks.*") == ["tasks.mem", "tasks.cpu"]
            with pytest.raises(ClusterError, match=r"get 'bad key' in bucket 'tasks'.*valid key"):
                await same.get("bad key")


async def test_a_watch_goes_on_after_the_server_restarts() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url], reconnect_wait=0.1) as writer, \
                NatsBridge.connect([server.url], reconnect_wait=0.1) as reader:
            bucket = await writer.kv("catalog")
            await bucket.put("a", b"1")
            await bucket.put("b", b"1")
            async with (await reader.kv("catalog")).watch() as watch:
                assert [c.key for c in await changes(watch, 2)] == ["a", "b"]
                await trio.to_thread.run_sync(server.restart)
                await bucket.put("a", b"2")
                await bucket.put("a", b"3")
                await bucket.delete("b")
                await bucket.put("c", b"1")
                # within seconds, not the ~20 s the client takes to notice on its own
                seen: list[KvChange] = []
                with trio.fail_after(5):
                    async for change in watch:
                        seen.append(change)
                        if change.key == "c":
                            break
                # Whether "a"'s first write after the restart shows depends on when the
                # watch started again (then only the last write of each key shows); either
                # way in order, nothing repeated and every key's last state there.
                written = [("a", b"2"), ("a", b"3"), ("b", None), ("c", b"1")]
                got = [(c.key, c.value) for c in seen]
                assert got in (written, written[1:]), got
                revisions = [c.revision for c in seen]
                assert revisions == sorted(set(revisions)) and revisions[0] > 2
                assert reader.reconnects == 1 and writer.reconnects == 1


async def test_a_bucket_with_a_ttl_forgets_its_keys() -> None:
    with NatsServer() as server:
        async with NatsBridge.connect([server.url]) as nats:
            members = await nats.kv("members", ttl=1.0)
            await members.put("m1", b"alive")
            assert (await members.get("m1") or pytest.fail("gone")).value == b"alive"
            written = time.monotonic()
            with trio.fail_after(6):
                while await members.get("m1") is not None:
                    await members.put("m2", b"alive")  # renewed: stays
                    await trio.sleep(0.1)
            assert time.monotonic() - written >= 0.9
            assert await members.keys() == ["m2"]
            # binding again with another TTL changes the bucket
            longer = await nats.kv("members", ttl=30.0)
            await longer.put("m3", b"alive")
            await trio.sleep(1.3)
            assert await longer.get("m3") is not None


async def test_connecting_fails_with_a_clear_error() -> None:
    with NatsServer(token="s3cret") as server:
        with pytest.raises(ClusterError, match=r"cannot connect to NATS at nats://127\.0\.0\.1:"
                                               r"\d+ within 1s: .*[Aa]uthorization"):
            async with NatsBridge.connect([server.url], connect_timeout=1.0):
                pass
        async with NatsBridge.connect([server.url], token="s3cret") as nats:
            assert nats.server == server.url.removeprefix("nats://") and nats.connected
        assert nats.closed
        # the loop thread is gone with the bridge
        assert not [t for t in threading.enumerate() if t.name.startswith("nats-")]
    with pytest.raises(ClusterError, match=r"cannot connect to NATS at .* connection refused"):
        async with NatsBridge.connect([server.url], token="s3cret", connect_timeout=1.0):
            pass


async def test_user_password_and_tls_reach_the_server(tmp_path: Path) -> None:
    ca, cert, key = pki.ca_and_server(tmp_path)
    with NatsServer(user="kapa", password="pw", tls_cert=cert, tls_key=key) as server:
        trusting = ssl.create_default_context(cafile=str(ca))
        async with NatsBridge.connect([server.url], user="kapa", password="pw",
                                      tls=trusting) as nats:
            bucket = await nats.kv("secure")
            assert await bucket.put("k", b"v") == 1
        with pytest.raises(ClusterError, match=r"[Aa]uthorization"):
            async with NatsBridge.connect([server.url], user="kapa", password="wrong",
                                          tls=trusting, connect_timeout=1.0):
                pass
        with pytest.raises(ClusterError, match=r"cannot connect.*certificate verify failed"):
            async with NatsBridge.connect([server.url], user="kapa", password="pw",
                                          tls=ssl.create_default_context(),  # not the CA
                                          connect_timeout=1.0):
                pass


async def publish_while(nats: NatsBridge, disturb: Callable[[], None], tag: str,
                        ) -> tuple[dict[int, bytes], int]:
    """Publish continuously while ``disturb`` runs in a thread, and 50 more after it.

    Returns the acknowledged messages (seq: payload) and how many were acknowledged
    after ``disturb`` returned. Each publish may retry for 20 s, longer than the 4-9 s
    a 2.9 stream takes to elect a new leader after its leader is killed: none may fail.
    """
    acked: dict[int, bytes] = {}
    after = 0
    done = trio.Event()

    async def publisher() -> None:
        nonlocal after
        n = 0
        while not done.is_set() or after < 50:
            n += 1
            payload = f"{tag}{n}".encode()
            ack = await nats.publish("load.x", payload, timeout=20.0)
            assert ack.seq not in acked, "two messages acknowledged with one sequence"
            acked[ack.seq] = payload
            after += done.is_set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        await trio.sleep(0.5)
        await trio.to_thread.run_sync(disturb)
        done.set()
    return acked, after


async def test_acknowledged_publishes_survive_a_server_restart_and_a_kill() -> None:
    with NatsCluster(3) as cluster:
        async with NatsBridge.connect(cluster.urls, reconnect_wait=0.1) as nats:
            state = await nats.ensure_stream("LOAD", ["load.>"], replicas=3)
            assert state.replicas == 3 and state.leader is not None
            names = [server.server_name for server in cluster.servers]

            def restart_connected() -> None:  # the bridge has to reconnect elsewhere
                cluster.restart(cluster.urls.index(f"nats://{nats.server}"))

            def kill_stream_leader() -> None:  # the stream has to elect a leader
                leader = trio.from_thread.run(nats.stream_state, "LOAD").leader
                cluster.restart(names.index(leader), kill=True)

            restarted, after = await publish_while(nats, restart_connected, "restarted-")
            assert nats.reconnects >= 1 and after >= 50 and len(restarted) > 100
            killed, after = await publish_while(nats, kill_stream_leader, "killed-")
            assert after >= 50 and len(killed) > 100
            acked = restarted | killed

            readback = await nats.pull_consumer("LOAD", "readback", ["load.x"])
            total = (await nats.stream_state("LOAD")).messages
            stored = dict(await fetch_all(readback, total, limit=20))
            assert len(stored) == total
            missing = {seq: p for seq, p in acked.items() if stored.get(seq) != p}
            assert not missing, f"{len(missing)} acknowledged messages lost, e.g. " \
                                f"{sorted(missing.items())[:5]}"
            # and nothing else: no retry stored a message twice
            assert stored == acked
