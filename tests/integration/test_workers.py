"""Broker workers as real processes (`formwright relay`, `formwright workers run echo`) against the
real RabbitMQ and database: delivery, graceful stop, a SIGKILL mid-batch, and poison messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.pipeline_fixtures import (
    connect_integration,
    delivery_rows,
    drain,
    open_form_with_question,
    pipeline_env,
    queue_depth,
    set_config,
    submit,
    wait_until,
)
from webapp.deliveries import ledger
from webapp.deliveries.models import DeliveryState
from webapp.outbox import broker
from webapp.outbox.models import OutboxEvent
from webapp.timeutil import utcnow

pytest_plugins = ("tests.pipeline_fixtures",)



async def _all_delivered(sessionmaker, n: int):
    rows = await delivery_rows(sessionmaker)
    return len(rows) == n and all(r.state == DeliveryState.DELIVERED for r in rows) and rows


async def test_workers_deliver_every_submission_once_and_stop_gracefully(
    client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    env = pipeline_env(pipeline_settings, echo_plugin)
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
    relay = processes.relay(env)
    worker = processes.workers(env, "echo")
    ids = [await submit(client, form_id, qid, f"Ada {i}") for i in range(5)]

    rows = await wait_until(lambda: _all_delivered(sessionmaker, 5), timeout=30, what="5 deliveries")
    assert sorted(line["response_id"] for line in echo_sink.lines()) == sorted(ids)
    assert all(r.attempts == 1 for r in rows)
    assert await worker.terminate() == 0 and "worker_stopped" in worker.log()
    assert await relay.terminate() == 0 and "relay_stopped" in relay.log()
    topology = broker.Topology.from_settings(pipeline_settings)
    assert await queue_depth(pipeline_settings.amqp_url, topology.work_queue("echo")) == 0


@pytest.mark.postgres_only
async def test_sigterm_finishes_the_batch_in_hand(
    backend, client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    env = pipeline_env(pipeline_settings, echo_plugin)
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("slow", delay=1.5))
    processes.relay(env)
    worker = processes.workers(env, "echo")
    for i in range(3):
        await submit(client, form_id, qid, f"Ada {i}")
    await wait_until(lambda: echo_sink.count() == 3, timeout=30, what="the batch to be under way")
    assert await worker.terminate() == 0  # while the handler is still answering
    rows = await delivery_rows(sessionmaker)
    assert [r.state for r in rows] == [DeliveryState.DELIVERED] * 3  # finished and recorded, not abandoned
    assert echo_sink.count() == 3


@pytest.mark.postgres_only
async def test_a_worker_killed_mid_batch_delivers_nothing_twice(
    backend, client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    env = pipeline_env(pipeline_settings, echo_plugin)
    form_id, qid = await open_form_with_question(client, owner)
    iid = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("slow", delay=30))
    processes.relay(env)
    worker = processes.workers(env, "echo")
    for i in range(3):
        await submit(client, form_id, qid, f"Ada {i}")
    # The sends happened; the worker is still "waiting for the answer" when it dies.
    await wait_until(lambda: echo_sink.count() == 3, timeout=30, what="the batch to be sent")
    worker.kill()
    rows = await delivery_rows(sessionmaker)
    assert [r.state for r in rows] == [DeliveryState.IN_FLIGHT] * 3

    await set_config(sessionmaker, iid, echo_sink.config("ok"))
    processes.workers(env, "echo")
    rows = await wait_until(lambda: _all_delivered(sessionmaker, 3), timeout=40, what="the redelivered batch")
    assert echo_sink.count() == 3  # reconciled from the earlier attempt, not sent again
    assert all(r.attempts == 2 for r in rows)


async def test_poison_messages_are_dead_lettered_visible_and_retryable(
    client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    pipeline_settings = replace(pipeline_settings, delivery_max_attempts=2)
    env = pipeline_env(pipeline_settings, echo_plugin)
    topology = broker.Topology.from_settings(pipeline_settings)
    form_id, qid = await open_form_with_question(client, owner)
    iid = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("raise"))
    processes.relay(env)
    processes.workers(env, "echo")
    rid = await submit(client, form_id, qid, "Ada")

    # An event the integration chokes on every time: retried through the tiers, then dead.
    async def dead():
        rows = await delivery_rows(sessionmaker)
        return rows and rows[0].state == DeliveryState.DEAD and rows[0]

    row = await wait_until(dead, timeout=30, what="the delivery to go dead")
    assert row.attempts == pipeline_settings.delivery_max_attempts
    assert "RuntimeError: echo was told to raise" in row.last_error
    await wait_until(lambda: queue_depth(pipeline_settings.amqp_url, topology.dead_queue("echo")),
                     timeout=10, what="a dead letter")

    # A message that is not an event at all goes to the dead-letter queue too, and work goes on.
    import aio_pika

    connection = await aio_pika.connect(pipeline_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"{not json", message_id="garbage"),
                                               routing_key=topology.work_queue("echo"))
    await wait_until(lambda: queue_depth(pipeline_settings.amqp_url, topology.dead_queue("echo")),
                     timeout=10, what="the garbage to be dead-lettered")

    async def two_dead_letters():
        return await queue_depth(pipeline_settings.amqp_url, topology.dead_queue("echo")) == 2

    await wait_until(two_dead_letters, timeout=10, what="two dead letters")
    letters = {m.message_id: m for m in await drain(pipeline_settings.amqp_url, topology.dead_queue("echo"))}
    assert "not JSON" in letters["garbage"].headers["x-error"]
    async with sessionmaker() as s:
        event_id = str(await s.scalar(select(OutboxEvent.event_id).where(OutboxEvent.response_id == rid)))
    assert "Gave up after" in letters[event_id].headers["x-error"]

    # The owner sees the dead delivery and retries it once the cause is fixed.
    r = await client.get(f"/api/v1/forms/{form_id}/responses/{rid}/deliveries", headers=owner.headers)
    assert r.status_code == 200 and "dead" in r.text, r.text
    await set_config(sessionmaker, iid, echo_sink.config("ok"))
    r = await client.post(f"/api/v1/deliveries/{row.id}/retry", headers=owner.headers)
    assert r.status_code in (200, 202), r.text
    await wait_until(lambda: _all_delivered(sessionmaker, 1), timeout=30, what="the retried delivery")
    assert [line["response_id"] for line in echo_sink.lines()] == [rid]


@pytest.mark.postgres_only
async def test_a_delivery_whose_message_was_lost_is_announced_again(
    backend, client, owner, sessionmaker, pipeline_settings, echo_sink, echo_plugin, processes
):
    """The broker lost the message of a pending delivery (purged, or dead-lettered after crashing
    its consumer too often): the relay's sweep notices the overdue row and it is delivered."""
    # The sweep runs every claim timeout (at least 5 s) and looks for rows overdue by that much.
    env = pipeline_env(replace(pipeline_settings, delivery_handler_timeout=2.0, delivery_claim_timeout=3.0),
                       echo_plugin)
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
    rid = await submit(client, form_id, qid, "Ada")
    async with sessionmaker() as s, s.begin():
        event = await s.scalar(select(OutboxEvent).where(OutboxEvent.response_id == rid))
        event.published_at = utcnow()  # as if published, then lost on the broker side
        await ledger.fan_out(s, [event.payload], ["echo"], now=utcnow() - timedelta(minutes=5))
    processes.relay(env)
    processes.workers(env, "echo")
    rows = await wait_until(lambda: _all_delivered(sessionmaker, 1), timeout=40, what="the lost delivery")
    assert rows[0].attempts == 1 and [line["response_id"] for line in echo_sink.lines()] == [rid]
