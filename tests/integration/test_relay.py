"""`formwright relay` as a real process against the real RabbitMQ and database: what it publishes,
several relays at once, an unroutable event, a crash between publish and mark, a broker outage."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import pytest
from sqlalchemy import func, select, text
from uuid_utils.compat import uuid7

from tests.pipeline_fixtures import (
    connect_integration,
    delivery_rows,
    drain,
    open_form_with_question,
    pipeline_env,
    queue_depth,
    submit,
    wait_until,
)
from tests.tcpproxy import TcpProxy
from webapp.deliveries.models import DeliveryState
from webapp.outbox import broker
from webapp.outbox.events import RESPONSE_SUBMITTED, response_event, write_event
from webapp.outbox.models import OutboxEvent
from webapp.timeutil import utcnow

pytest_plugins = ("tests.pipeline_fixtures",)



async def _unpublished(sessionmaker) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None)))


async def _write_events(sessionmaker, n: int, form_id: UUID | None = None) -> list[str]:
    form_id = form_id or uuid7()
    events = [response_event(RESPONSE_SUBMITTED, form_id=form_id, form_version=1, response_id=uuid7(),
                             submitted_at=utcnow(), answers=[]) for _ in range(n)]
    async with sessionmaker() as s, s.begin():
        for event in events:
            await write_event(s, event)
    return [e["event_id"] for e in events]


async def test_the_relay_publishes_confirmed_persistent_messages_and_marks_them(
    clean_db, sessionmaker, pipeline_settings, echo_plugin, processes
):
    event_ids = await _write_events(sessionmaker, 5)
    relay = processes.relay(pipeline_env(pipeline_settings, echo_plugin))
    topology = broker.Topology.from_settings(pipeline_settings)
    await wait_until(lambda: _published_all(sessionmaker), timeout=30, what="every row to be marked published")
    messages = await drain(pipeline_settings.amqp_url, topology.work_queue("echo"))
    assert sorted(m.message_id for m in messages) == sorted(event_ids)
    assert {m.delivery_mode.value for m in messages} == {2}  # persistent
    assert {(m.routing_key, m.content_type) for m in messages} == {("response.submitted", "application/json")}
    assert {broker.decode(m.body)["event_id"] for m in messages} == set(event_ids)
    # The whole topology is there for every installed kind: tiers and the dead-letter queue.
    for kind in ("echo", "sheets", "sms", "webhook"):
        for tier in pipeline_settings.retry_tiers:
            assert await queue_depth(pipeline_settings.amqp_url, topology.retry_queue(kind, tier)) == 0
        assert await queue_depth(pipeline_settings.amqp_url, topology.dead_queue(kind)) == 0
    assert await relay.terminate() == 0


async def _published_all(sessionmaker) -> bool:
    return await _unpublished(sessionmaker) == 0


async def test_an_unroutable_event_stays_unpublished(clean_db, sessionmaker, pipeline_settings, echo_plugin, processes):
    """mandatory=True: a message no queue takes is an error, not a success."""
    stray = {"schema": 1, "event_id": str(uuid7()), "type": "delivery.retry", "occurred_at": utcnow().isoformat(),
             "form_id": str(uuid7()), "response_id": None, "delivery_id": str(uuid7()),
             "integration_id": str(uuid7()), "kind": "not-installed", "original_event_id": str(uuid7())}
    async with sessionmaker() as s, s.begin():
        await write_event(s, stray)
    good = await _write_events(sessionmaker, 2)
    relay = processes.relay(pipeline_env(pipeline_settings, echo_plugin))
    await wait_until(lambda: _unpublished(sessionmaker), timeout=30, what="the relay to try")

    async def good_published():
        async with sessionmaker() as s:
            rows = (await s.execute(select(OutboxEvent.event_id, OutboxEvent.published_at, OutboxEvent.attempts))).all()
        by_id = {str(r[0]): r for r in rows}
        return all(by_id[g][1] is not None for g in good) and by_id[stray["event_id"]][2] >= 2 and by_id

    by_id = await wait_until(good_published, timeout=30, what="the good rows to publish and the stray one to fail")
    assert by_id[stray["event_id"]][1] is None
    assert "NO_ROUTE" in relay.log()


@pytest.mark.postgres_only
async def test_a_notify_wakes_the_relay_without_waiting_for_its_poll(
    backend, clean_db, engine, sessionmaker, pipeline_settings, echo_plugin, processes
):
    relay = processes.relay(pipeline_env(replace(pipeline_settings, outbox_poll_seconds=600.0), echo_plugin))
    await wait_until(lambda: "relay_connected" in relay.log(), timeout=30, what="the relay to start")
    await wait_until(lambda: "relay_listening" in relay.log(), timeout=30, what="the relay to LISTEN")
    [event_id] = await _write_events(sessionmaker, 1)
    async with engine.begin() as conn:
        await conn.execute(text("NOTIFY formwright_outbox"))
    await wait_until(lambda: _published_all(sessionmaker), timeout=20, what="the woken relay to publish")
    topology = broker.Topology.from_settings(pipeline_settings)
    assert [m.message_id for m in await drain(pipeline_settings.amqp_url, topology.work_queue("echo"))] == [event_id]


@pytest.mark.postgres_only
async def test_several_relays_never_publish_a_row_twice(
    backend, clean_db, sessionmaker, pipeline_settings, echo_plugin, processes
):
    event_ids = await _write_events(sessionmaker, 300)
    env = pipeline_env(replace(pipeline_settings, outbox_batch_size=10), echo_plugin)
    relays = [processes.relay(env) for _ in range(3)]
    await wait_until(lambda: _published_all(sessionmaker), timeout=60, what="all rows to be published")
    topology = broker.Topology.from_settings(pipeline_settings)
    messages = await drain(pipeline_settings.amqp_url, topology.work_queue("echo"))
    assert sorted(m.message_id for m in messages) == sorted(event_ids)  # each exactly once
    assert sum("relay_connected" in r.log() for r in relays) == 3
    async with sessionmaker() as s:
        assert await s.scalar(select(func.max(OutboxEvent.attempts))) == 1


@pytest.mark.postgres_only
async def test_a_relay_killed_between_publish_and_mark_is_absorbed_by_the_ledger(
    backend, client, owner, engine, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    env = pipeline_env(pipeline_settings, echo_plugin)
    topology = broker.Topology.from_settings(pipeline_settings)
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
    # Hold the relay's "mark published" UPDATE until we have killed it: a trigger waits on a lock we own.
    holder = await engine.connect()
    try:
        await holder.execute(text("SELECT pg_advisory_lock(4242)"))
        await holder.commit()
        async with engine.begin() as conn:
            await conn.execute(text("CREATE OR REPLACE FUNCTION fw_test_hold() RETURNS trigger AS $$ "
                                    "BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$ LANGUAGE plpgsql"))
            await conn.execute(text("CREATE TRIGGER fw_test_hold BEFORE UPDATE ON outbox_events FOR EACH ROW "
                                    "WHEN (NEW.published_at IS NOT NULL) EXECUTE FUNCTION fw_test_hold()"))
        ids = [await submit(client, form_id, qid, f"Ada {i}") for i in range(3)]
        relay = processes.relay(env)
        await wait_until(lambda: "relay_connected" in relay.log(), timeout=30, what="the relay to declare its queues")

        async def confirmed():
            return await queue_depth(pipeline_settings.amqp_url, topology.work_queue("echo")) == 3

        await wait_until(confirmed, timeout=30, what="the broker to hold the 3 confirmed messages")
        relay.kill()  # published and confirmed, not yet marked
        async with engine.begin() as conn:
            # The killed relay's backend still waits on the lock; end it so its transaction rolls back.
            await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"))
            await conn.execute(text("DROP TRIGGER fw_test_hold ON outbox_events"))
            await conn.execute(text("DROP FUNCTION fw_test_hold()"))
    finally:
        await holder.execute(text("SELECT pg_advisory_unlock_all()"))
        await holder.close()
    assert await wait_until(lambda: _unpublished(sessionmaker), timeout=10, what="the rows to be unpublished") == 3

    processes.relay(env)  # publishes the same three again: duplicates on the broker
    await wait_until(lambda: _published_all(sessionmaker), timeout=30, what="the rows to be marked")
    assert await queue_depth(pipeline_settings.amqp_url, topology.work_queue("echo")) == 6
    processes.workers(env, "echo")

    async def settled():
        depth = await queue_depth(pipeline_settings.amqp_url, topology.work_queue("echo"))
        rows = await delivery_rows(sessionmaker)
        return depth == 0 and len(rows) == 3 and all(r.state == DeliveryState.DELIVERED for r in rows) and rows

    rows = await wait_until(settled, timeout=30, what="both copies of each message to be consumed")
    assert sorted(line["response_id"] for line in echo_sink.lines()) == sorted(ids)  # once each
    assert all(r.attempts == 1 for r in rows)


@pytest.mark.postgres_only
async def test_a_broker_outage_loses_nothing(
    backend, client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    proxy = TcpProxy("127.0.0.1", 5672)
    port = await proxy.start()
    try:
        vhost = pipeline_settings.amqp_url.rsplit("/", 1)[1]
        via_proxy = replace(pipeline_settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/{vhost}")
        env = pipeline_env(via_proxy, echo_plugin)
        form_id, qid = await open_form_with_question(client, owner)
        await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
        relay = processes.relay(env)
        worker = processes.workers(env, "echo")
        ids = [await submit(client, form_id, qid, f"before {i}") for i in range(3)]
        await wait_until(lambda: echo_sink.count() == 3, timeout=30, what="deliveries before the outage")
        connections_before = proxy.connections

        await proxy.cut()
        # Submissions do not need the broker: they keep succeeding while it is away.
        ids += [await submit(client, form_id, qid, f"during {i}") for i in range(4)]
        await wait_until(lambda: "relay_broker_unavailable" in relay.log(), timeout=20, what="the relay to notice")
        await wait_until(lambda: "worker_session_ended" in worker.log(), timeout=20, what="the worker to notice")
        assert await _unpublished(sessionmaker) == 4

        await proxy.restore()
        rows = await wait_until(lambda: _delivered(sessionmaker, 7), timeout=40,
                                what="everything to be delivered after the outage")
        assert await _published_all(sessionmaker)
        assert sorted(line["response_id"] for line in echo_sink.lines()) == sorted(ids)  # none lost, none twice
        assert {r.state for r in rows} == {DeliveryState.DELIVERED}
        assert proxy.connections >= connections_before + 2  # both processes reconnected
    finally:
        await proxy.close()


async def _delivered(sessionmaker, n: int):
    rows = await delivery_rows(sessionmaker)
    return len(rows) == n and all(r.state == DeliveryState.DELIVERED for r in rows) and rows


def test_routing_keys_and_names():
    topology = broker.Topology("ns.", (10, 60))
    assert topology.exchange == "ns.formwright.events"
    assert topology.retry_queue("sms", 60) == "ns.formwright.sms.retry.60"
    assert topology.dead_queue("sms") == "ns.formwright.sms.dead"
    assert [topology.tier_for(s) for s in (0, 10, 11, 61, 5000)] == [10, 10, 60, 60, 60]
    assert broker.routing_key("response.updated") == "response.updated"
    assert broker.routing_key("response.updated", "sms") == "response.updated"  # every kind's queue
    assert broker.routing_key("delivery.retry", "sms") == "delivery.retry.sms"
