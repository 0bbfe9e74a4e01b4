"""The delivery ledger and engine, run in-process (embedded mode) through the echo integration.

Each test submits through the API, then drives the embedded dispatcher the way the web process
does, and checks what was delivered (the echo file) and what the owner sees (the ledger).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from tests.pipeline_fixtures import (
    connect_integration,
    delivery_rows,
    open_form_with_question,
    set_config,
    submit,
    wait_until,
)
from webapp.app import create_app
from webapp.deliveries import ledger
from webapp.deliveries.embedded import EmbeddedDispatcher, embedded_lifespan
from webapp.deliveries.engine import BadEvent, DeliveryEngine, check_event
from webapp.deliveries.models import DeliveryState
from webapp.outbox.models import OutboxEvent
from webapp.timeutil import utcnow

pytest_plugins = ("tests.pipeline_fixtures",)


def fast(settings, **extra):
    return replace(settings, **{"retry_tiers": (1, 2), "delivery_max_attempts": 2, "delivery_handler_timeout": 0.5,
                                "delivery_claim_timeout": 1.0, **extra})


async def drain(dispatcher: EmbeddedDispatcher) -> None:
    """Run passes until one finds nothing to do (what the background task does between polls)."""
    for _ in range(50):
        if not await dispatcher.run_once():
            return
    raise AssertionError("the dispatcher never ran out of work")


async def test_each_event_is_delivered_once_per_enabled_integration(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    first = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config(), name="first")
    second = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config(), name="second")
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config(), name="off", enabled=False)
    ids = [await submit(client, form_id, qid, f"Ada {i}") for i in range(3)]
    dispatcher = EmbeddedDispatcher(sessionmaker, settings)
    await drain(dispatcher)

    lines = echo_sink.lines()
    assert sorted((line["response_id"], line["type"]) for line in lines) == sorted(
        [(rid, "response.submitted") for rid in ids] * 2)
    assert {line["answers"][0]["value"] for line in lines} == {"Ada 0", "Ada 1", "Ada 2"}
    rows = await delivery_rows(sessionmaker)
    assert len(rows) == 6 and {r.integration_id for r in rows} == {first, second}
    assert all(r.state == DeliveryState.DELIVERED and r.attempts == 1 and r.delivered_at for r in rows)
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))) == 0

    # Editing and deleting are events too; nothing already delivered goes out again.
    r = await client.delete(f"/api/v1/forms/{form_id}/responses/{ids[0]}", headers=owner.headers)
    assert r.status_code == 204, r.text
    await drain(dispatcher)
    assert echo_sink.count() == 8
    assert [line["type"] for line in echo_sink.lines()[6:]] == ["response.deleted"] * 2


async def test_a_redelivered_event_is_absorbed_by_the_ledger(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
    await submit(client, form_id, qid, "Ada")
    async with sessionmaker() as s:
        event = (await s.scalar(select(OutboxEvent))).payload
    engine = DeliveryEngine(sessionmaker, settings)
    first = await engine.process("echo", [event])
    again = await engine.process("echo", [event])  # the broker delivered the same message twice
    assert echo_sink.count() == 1
    assert list(first[0].states.values()) == [DeliveryState.DELIVERED] and first[0].recheck_in is None
    assert list(again[0].states.values()) == [DeliveryState.DELIVERED] and again[0].recheck_in is None
    assert [r.attempts for r in await delivery_rows(sessionmaker)] == [1]


async def test_temporary_errors_retry_then_go_dead_and_the_owner_can_retry(
    client, owner, sessionmaker, settings, echo_sink
):
    form_id, qid = await open_form_with_question(client, owner)
    iid = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("retry"))
    await submit(client, form_id, qid, "Ada")
    dispatcher = EmbeddedDispatcher(sessionmaker, fast(settings))
    await drain(dispatcher)
    [row] = await delivery_rows(sessionmaker)
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.PENDING, 1, "echo was told to retry")
    assert row.next_attempt_at > utcnow()  # waits for its tier (1 s) rather than hammering
    assert echo_sink.count() == 0

    async def dead():
        await dispatcher.run_once()
        [row] = await delivery_rows(sessionmaker)
        return row if row.state == DeliveryState.DEAD else None

    row = await wait_until(dead, timeout=10, what="the delivery to give up")
    assert row.attempts == 2 and row.last_error.startswith("Gave up after 2 attempts")

    # The owner sees it and retries once the far side is fixed.
    r = await client.get(f"/api/v1/forms/{form_id}/deliveries", headers=owner.headers)
    assert r.status_code == 200 and r.json()["items"][0]["state"] == "dead", r.text
    await set_config(sessionmaker, iid, echo_sink.config("ok"))
    r = await client.post(f"/api/v1/deliveries/{row.id}/retry", headers=owner.headers)
    assert r.status_code in (200, 202), r.text
    await drain(dispatcher)
    [row] = await delivery_rows(sessionmaker)
    assert row.state == DeliveryState.DELIVERED and row.last_error is None
    assert echo_sink.count() == 1


async def test_a_permanent_failure_is_not_retried(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("fail"))
    await connect_integration(sessionmaker, form_id, "echo", {"path": "relative.jsonl", "bogus": 1}, name="broken")
    await submit(client, form_id, qid, "Ada")
    dispatcher = EmbeddedDispatcher(sessionmaker, fast(settings))
    await drain(dispatcher)
    rows = {r.last_error.split(" (")[0]: r for r in await delivery_rows(sessionmaker)}
    assert set(rows) == {"echo was told to fail", "The integration's settings are invalid"}
    assert all(r.state == DeliveryState.FAILED and r.attempts == 1 and r.next_attempt_at is None for r in rows.values())
    assert "bogus" in next(r.last_error for k, r in rows.items() if k.startswith("The integration"))


async def test_an_unknown_outcome_is_reconciled_by_itself_not_resent(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    iid = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("unknown"))
    await submit(client, form_id, qid, "Ada")
    dispatcher = EmbeddedDispatcher(sessionmaker, fast(settings))
    await drain(dispatcher)
    [row] = await delivery_rows(sessionmaker)
    assert row.state == DeliveryState.UNKNOWN and row.claimed_at is not None and row.external_ref
    assert row.next_attempt_at is not None  # scheduled for a look-up on the first retry tier
    assert echo_sink.count() == 1

    await set_config(sessionmaker, iid, echo_sink.config("ok"))

    async def delivered():
        await dispatcher.run_once()
        [row] = await delivery_rows(sessionmaker)
        return row if row.state == DeliveryState.DELIVERED else None

    row = await wait_until(delivered, timeout=10, what="the unknown delivery to be reconciled")
    assert row.attempts == 2
    assert echo_sink.count() == 1  # found by looking it up, not sent twice
    r = await client.post(f"/api/v1/deliveries/{row.id}/retry", headers=owner.headers)
    assert r.status_code == 409  # nothing left to retry


async def test_an_abandoned_claim_is_taken_over_and_reconciled(client, owner, sessionmaker, settings, echo_sink):
    """A process that died mid-call left the row in flight after the effect happened."""
    form_id, qid = await open_form_with_question(client, owner)
    await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("slow", delay=0.3))
    await submit(client, form_id, qid, "Ada")
    settings = fast(settings)
    dispatcher = EmbeddedDispatcher(sessionmaker, settings)
    await dispatcher.dispatch_outbox()
    [row] = await delivery_rows(sessionmaker)
    async with sessionmaker() as s, s.begin():
        claims, _ = await ledger.claim(s, [row.id], now=utcnow(), stale_after=settings.delivery_claim_timeout)
    assert len(claims) == 1
    engine = DeliveryEngine(sessionmaker, settings)
    works, _ = await engine._prepare(engine.registry.get("echo"), claims, {})
    await engine.registry.get("echo").handle(works)  # the effect happens; then the process "dies"
    assert echo_sink.count() == 1

    assert await dispatcher.run_once() == 0  # still in flight: a live claim is left alone
    async def delivered():
        await dispatcher.run_once()
        [row] = await delivery_rows(sessionmaker)
        return row.state == DeliveryState.DELIVERED and row

    row = await wait_until(delivered, timeout=10, what="the abandoned claim to be taken over")
    assert row.attempts == 2 and echo_sink.count() == 1


async def test_handler_errors_and_hangs_are_contained(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    raising = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("raise"), name="raise")
    hanging = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config("hang", delay=3), name="hang")
    await submit(client, form_id, qid, "Ada")
    dispatcher = EmbeddedDispatcher(sessionmaker, fast(settings, delivery_max_attempts=3))
    await dispatcher.dispatch_outbox()
    [raised] = await delivery_rows(sessionmaker, integration_id=raising)
    [hung] = await delivery_rows(sessionmaker, integration_id=hanging)
    await dispatcher.engine.run_deliveries("echo", [raised.id])
    await dispatcher.engine.run_deliveries("echo", [hung.id])
    [raised] = await delivery_rows(sessionmaker, integration_id=raising)
    [hung] = await delivery_rows(sessionmaker, integration_id=hanging)
    assert raised.state == DeliveryState.PENDING and "RuntimeError: echo was told to raise" in raised.last_error
    assert hung.state == DeliveryState.UNKNOWN and "No answer within 0.5 seconds" in hung.last_error
    assert echo_sink.count() == 0


async def test_disabling_an_integration_stops_its_pending_deliveries(client, owner, sessionmaker, settings, echo_sink):
    form_id, qid = await open_form_with_question(client, owner)
    iid = await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
    await submit(client, form_id, qid, "Ada")
    dispatcher = EmbeddedDispatcher(sessionmaker, settings)
    await dispatcher.dispatch_outbox()
    r = await client.patch(f"/api/v1/forms/{form_id}/integrations/{iid}", headers=owner.headers,
                           json={"enabled": False})
    assert r.status_code == 200, r.text
    await drain(dispatcher)
    [row] = await delivery_rows(sessionmaker)
    assert row.state == DeliveryState.FAILED and "disabled" in row.last_error
    assert echo_sink.count() == 0


async def test_without_integrations_events_are_just_marked_dispatched(client, owner, sessionmaker, settings):
    form_id, qid = await open_form_with_question(client, owner)
    for i in range(3):
        await submit(client, form_id, qid, f"x{i}")
    dispatcher = EmbeddedDispatcher(sessionmaker, settings)
    assert await dispatcher.dispatch_outbox() == 3
    assert await dispatcher.run_once() == 0
    assert await delivery_rows(sessionmaker) == []


async def test_the_web_process_delivers_in_the_background(owner, engine, sessionmaker, settings, echo_sink):
    """`make run` with no AMQP_URL: the app's own lifespan task delivers."""
    app = create_app(replace(settings, embedded_delivery=True, outbox_poll_seconds=0.1))
    async with AsyncTestClient(app) as client:
        form_id, qid = await open_form_with_question(client, owner)
        await connect_integration(sessionmaker, form_id, "echo", echo_sink.config())
        rid = await submit(client, form_id, qid, "Ada")
        await wait_until(echo_sink.count, timeout=10, what="the background delivery")
    assert [line["response_id"] for line in echo_sink.lines()] == [rid]
    # With a broker configured (or the setting off), the web process leaves delivery to the relay and workers.
    assert embedded_lifespan(replace(settings, embedded_delivery=True, amqp_url="amqp://x"), engine) == []
    assert embedded_lifespan(replace(settings, embedded_delivery=False), engine) == []
    assert len(embedded_lifespan(replace(settings, embedded_delivery=True), engine)) == 1


def test_malformed_events_are_rejected_with_a_reason():
    good = {"type": "response.submitted", "event_id": "0190c5e1-8b7f-7e4e-9f3b-1c2d3e4f5a6b",
            "form_id": "0190c5e1-8b7f-7e4e-9f3b-1c2d3e4f5a6c"}
    assert check_event(good) is good
    for bad, reason in [([], "not a JSON object"), ({**good, "type": "nope"}, "unknown event type"),
                        ({**good, "event_id": "x"}, "event_id"),
                        ({**good, "type": "delivery.retry"}, "delivery_id")]:
        try:
            check_event(bad)
        except BadEvent as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_retry_delays_follow_the_tiers_and_respect_retry_after():
    tiers = (10, 60, 600)
    assert [ledger.retry_delay(n, tiers) for n in (1, 2, 3, 4, 9)] == [10, 60, 600, 600, 600]
    assert ledger.retry_delay(1, tiers, retry_after=30) == 60
    assert ledger.retry_delay(2, tiers, retry_after=5) == 60
    assert ledger.retry_delay(1, tiers, retry_after=10_000) == 600
    assert timedelta(seconds=ledger.retry_delay(1, (1, 2))) == timedelta(seconds=1)
