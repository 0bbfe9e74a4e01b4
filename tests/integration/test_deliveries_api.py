"""Owners see deliveries per form and per response, and retry the ones that did not go through.

The ledger rows are written here the way the delivery engine leaves them (states, attempts, last
error), so these tests pin what the owner sees and can do regardless of how a row got there.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from uuid_utils.compat import uuid7

from tests.integration.test_integrations_api import connect, open_form, probe  # noqa: F401 - a fixture
from webapp.deliveries.embedded import EmbeddedDispatcher
from webapp.deliveries.models import Delivery, DeliveryState
from webapp.outbox.models import OutboxEvent
from webapp.plugins import Registry

pytestmark = pytest.mark.usefixtures("probe")

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def _submit(client, fid, answers) -> str:
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": answers})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _event_id(sessionmaker, response_id, event_type="response.submitted") -> uuid.UUID:
    async with sessionmaker() as s:
        return await s.scalar(select(OutboxEvent.event_id).where(
            OutboxEvent.response_id == uuid.UUID(response_id), OutboxEvent.event_type == event_type))


async def _ledger(sessionmaker, *rows) -> list[str]:
    """Insert ledger rows: (integration id, form id, response id, event id, state, attempts, error, minute)."""
    ids = []
    async with sessionmaker() as s, s.begin():
        for iid, fid, rid, eid, state, attempts, error, minute in rows:
            d = Delivery(id=uuid7(), integration_id=uuid.UUID(iid), form_id=uuid.UUID(fid),
                         response_id=uuid.UUID(rid) if rid else None, event_id=eid, event_type="response.submitted",
                         state=state, attempts=attempts, last_error=error,
                         created_at=T0 + timedelta(minutes=minute), updated_at=T0 + timedelta(minutes=minute))
            s.add(d)
            ids.append(str(d.id))
    return ids


async def _setup(client, owner, sessionmaker, n=3):
    fid, (name, phone, _) = await open_form(client, owner)
    a = (await connect(client, owner, fid, {"phone_question_id": phone}, name="Texts"))["id"]
    b = (await connect(client, owner, fid, {"phone_question_id": phone}, name="Backup"))["id"]
    responses = [await _submit(client, fid, {name: f"R{i}", phone: "+12025550143"}) for i in range(n)]
    events = [await _event_id(sessionmaker, rid) for rid in responses]
    return fid, a, b, responses, events


async def test_form_deliveries_are_listed_newest_first_with_filters_and_pages(client, owner, sessionmaker):
    fid, a, b, (r0, r1, r2), (e0, e1, e2) = await _setup(client, owner, sessionmaker)
    S = DeliveryState
    ids = await _ledger(
        sessionmaker,
        (a, fid, r0, e0, S.DELIVERED, 1, None, 0),
        (b, fid, r0, e0, S.FAILED, 1, "The number is not a mobile number (Twilio 21614)", 1),
        (a, fid, r1, e1, S.DEAD, 8, "HTTP 503 from the server", 2),
        (b, fid, r1, e1, S.UNKNOWN, 2, "Timed out after sending", 3),
        (a, fid, r2, e2, S.PENDING, 0, None, 4),
    )
    url = f"/api/v1/forms/{fid}/deliveries"
    r = await client.get(url, headers=owner.headers)
    assert r.status_code == 200
    page = r.json()
    assert [d["id"] for d in page["items"]] == ids[::-1] and page["next_cursor"] is None
    failed = page["items"][3]
    assert failed["state"] == "failed" and failed["attempts"] == 1 and failed["retryable"] is True
    assert failed["last_error"] == "The number is not a mobile number (Twilio 21614)"
    assert failed["integration_name"] == "Backup" and failed["kind"] == "probe" and failed["response_id"] == r0
    assert [d["retryable"] for d in page["items"]] == [False, True, True, True, False]

    r = await client.get(url, params={"state": "failed"}, headers=owner.headers)
    assert [d["id"] for d in r.json()["items"]] == [ids[1]]
    r = await client.get(url, params={"integration_id": a}, headers=owner.headers)
    assert [d["id"] for d in r.json()["items"]] == [ids[4], ids[2], ids[0]]
    r = await client.get(url, params={"response_id": r1, "integration_id": b}, headers=owner.headers)
    assert [d["id"] for d in r.json()["items"]] == [ids[3]]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(url, params=params, headers=owner.headers)).json()
        seen += [d["id"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    for params, where in [({"state": "lost"}, "state"), ({"limit": 0}, "limit"), ({"cursor": "%%%"}, "cursor"),
                          ({"integration_id": "12"}, "integration_id")]:
        r = await client.get(url, params=params, headers=owner.headers)
        assert r.status_code == 400, (params, r.text)
        assert where in r.text


async def test_per_response_view_lists_every_integration(client, owner, sessionmaker):
    fid, a, b, (r0, r1, _r2), (e0, _e1, _e2) = await _setup(client, owner, sessionmaker)
    S = DeliveryState
    await _ledger(sessionmaker, (a, fid, r0, e0, S.FAILED, 3, "HTTP 410 Gone", 0))
    r = await client.get(f"/api/v1/forms/{fid}/responses/{r0}/deliveries", headers=owner.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["response_id"] == r0
    by_name = {i["integration_name"]: i for i in body["items"]}
    assert by_name["Texts"]["state"] == "failed"
    [d] = by_name["Texts"]["deliveries"]
    assert (d["attempts"], d["last_error"], d["retryable"]) == (3, "HTTP 410 Gone", True)
    assert d["updated_at"]
    assert by_name["Backup"]["state"] is None and by_name["Backup"]["deliveries"] == []

    # A response with no delivery yet still lists the integrations; an unknown one is a 404.
    r = await client.get(f"/api/v1/forms/{fid}/responses/{r1}/deliveries", headers=owner.headers)
    assert r.status_code == 200 and all(i["state"] is None for i in r.json()["items"])
    r = await client.get(f"/api/v1/forms/{fid}/responses/{uuid.uuid4()}/deliveries", headers=owner.headers)
    assert r.status_code == 404

    # A deleted response is still found through its deliveries (its response.deleted event).
    assert (await client.delete(f"/api/v1/forms/{fid}/responses/{r0}", headers=owner.headers)).status_code == 204
    r = await client.get(f"/api/v1/forms/{fid}/responses/{r0}/deliveries", headers=owner.headers)
    assert r.status_code == 200 and {i["integration_name"]: i["state"] for i in r.json()["items"]}["Texts"] == "failed"


async def test_retry_requeues_the_row_and_writes_one_retry_event(client, owner, sessionmaker):
    fid, a, b, (r0, r1, _r2), (e0, e1, _e2) = await _setup(client, owner, sessionmaker)
    S = DeliveryState
    failed, dead, unknown, delivered, pending = await _ledger(
        sessionmaker,
        (a, fid, r0, e0, S.FAILED, 1, "HTTP 400: bad payload", 0),
        (b, fid, r0, e0, S.DEAD, 8, "HTTP 503", 1),
        (a, fid, r1, e1, S.UNKNOWN, 2, "Timed out after sending", 2),
        (b, fid, r1, e1, S.DELIVERED, 1, None, 3),
        (a, fid, None, uuid7(), S.PENDING, 0, None, 4),
    )

    async def outbox_retries():
        async with sessionmaker() as s:
            return list(await s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "delivery.retry")
                                        .order_by(OutboxEvent.id)))

    r = await client.post(f"/api/v1/deliveries/{failed}/retry", headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["delivery"]["state"] == "pending" and body["delivery"]["retryable"] is False
    assert body["delivery"]["last_error"] == "HTTP 400: bad payload" and body["delivery"]["attempts"] == 1
    assert datetime.fromisoformat(body["delivery"]["next_attempt_at"]) > T0
    [event] = await outbox_retries()
    assert str(event.event_id) == body["event_id"] and event.published_at is None
    payload = event.payload
    assert {k: payload[k] for k in ("type", "form_id", "response_id", "delivery_id", "integration_id", "kind",
                                    "original_event_id", "schema")} == {
        "type": "delivery.retry", "form_id": fid, "response_id": r0, "delivery_id": failed, "integration_id": a,
        "kind": "probe", "original_event_id": str(e0), "schema": 1}
    assert payload["event_id"] == body["event_id"] and datetime.fromisoformat(payload["occurred_at"])

    # Retrying again while it waits is a conflict, and writes nothing.
    r = await client.post(f"/api/v1/deliveries/{failed}/retry", headers=owner.headers)
    assert r.status_code == 409 and "pending" in r.json()["detail"]
    for did, state in [(delivered, "delivered"), (pending, "pending")]:
        r = await client.post(f"/api/v1/deliveries/{did}/retry", headers=owner.headers)
        assert r.status_code == 409 and state in r.json()["detail"]
    assert len(await outbox_retries()) == 1

    r = await client.post(f"/api/v1/deliveries/{dead}/retry", headers=owner.headers)
    assert r.status_code == 200 and r.json()["delivery"]["state"] == "pending"
    # An unknown outcome stays unknown (due now), so the next attempt looks the first one up before resending.
    r = await client.post(f"/api/v1/deliveries/{unknown}/retry", headers=owner.headers)
    assert r.status_code == 200 and r.json()["delivery"]["state"] == "unknown"
    assert r.json()["delivery"]["next_attempt_at"] is not None
    assert len(await outbox_retries()) == 3

    r = await client.get(f"/api/v1/forms/{fid}/deliveries", params={"state": "failed"}, headers=owner.headers)
    assert r.json()["items"] == []


async def test_retry_rules_for_disabled_foreign_and_missing_deliveries(client, owner, make_owner, sessionmaker):
    fid, a, b, (r0, *_), (e0, *_) = await _setup(client, owner, sessionmaker, n=1)
    [failed] = await _ledger(sessionmaker, (a, fid, r0, e0, DeliveryState.FAILED, 1, "nope", 0))
    intruder = await make_owner()
    for method, url in [
        ("POST", f"/api/v1/deliveries/{failed}/retry"),
        ("GET", f"/api/v1/forms/{fid}/deliveries"),
        ("GET", f"/api/v1/forms/{fid}/responses/{r0}/deliveries"),
    ]:
        r = await client.request(method, url, headers=intruder.headers)
        assert r.status_code == 404, (url, r.text)
    assert (await client.post(f"/api/v1/deliveries/{uuid.uuid4()}/retry", headers=owner.headers)).status_code == 404
    assert (await client.post("/api/v1/deliveries/nope/retry", headers=owner.headers)).status_code == 400

    await client.patch(f"/api/v1/forms/{fid}/integrations/{a}", json={"enabled": False}, headers=owner.headers)
    r = await client.post(f"/api/v1/deliveries/{failed}/retry", headers=owner.headers)
    assert r.status_code == 409 and "disabled" in r.json()["detail"]
    async with sessionmaker() as s:
        assert await s.scalar(select(Delivery.state).where(Delivery.id == uuid.UUID(failed))) == DeliveryState.FAILED
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)
                              .where(OutboxEvent.event_type == "delivery.retry")) == 0

    # Counts per state show on the integration; deleting it removes its deliveries.
    r = await client.get(f"/api/v1/forms/{fid}/integrations/{a}", headers=owner.headers)
    assert r.json()["delivery_counts"] == {"failed": 1}
    await client.delete(f"/api/v1/forms/{fid}/integrations/{a}", headers=owner.headers)
    assert (await client.post(f"/api/v1/deliveries/{failed}/retry", headers=owner.headers)).status_code == 404


async def test_owner_retry_goes_through_the_delivery_engine(client, owner, sessionmaker, settings, probe):  # noqa: F811
    """Failed → the owner fixes the config and retries → delivered; unknown → retried with the
    earlier attempt handed to the integration so it can look it up instead of sending twice."""
    fid, (name, phone, _) = await open_form(client, owner)
    iid = (await connect(client, owner, fid, {"phone_question_id": phone, "outcome": "failed"}))["id"]
    rid = await _submit(client, fid, {name: "Ada", phone: "+12025550143"})
    dispatcher = EmbeddedDispatcher(sessionmaker, settings, Registry(integrations={"probe": probe}))
    await dispatcher.run_once()

    url = f"/api/v1/forms/{fid}/responses/{rid}/deliveries"
    [item] = (await client.get(url, headers=owner.headers)).json()["items"]
    [d] = item["deliveries"]
    assert (item["state"], d["attempts"], d["last_error"]) == ("failed", 1, "The probe refused it (HTTP 422).")

    await client.patch(f"/api/v1/forms/{fid}/integrations/{iid}", json={"config": {"outcome": "unknown"}},
                       headers=owner.headers)
    assert (await client.post(f"/api/v1/deliveries/{d['id']}/retry", headers=owner.headers)).status_code == 200
    await dispatcher.run_once()
    [d] = (await client.get(url, headers=owner.headers)).json()["items"][0]["deliveries"]
    assert (d["state"], d["attempts"], d["external_ref"]) == ("unknown", 2, "probe-9")
    assert probe.handled[-1].previous_claim_at is None  # a failed attempt promised nothing was sent

    await client.patch(f"/api/v1/forms/{fid}/integrations/{iid}", json={"config": {"outcome": "delivered"}},
                       headers=owner.headers)
    assert (await client.post(f"/api/v1/deliveries/{d['id']}/retry", headers=owner.headers)).status_code == 200
    await dispatcher.run_once()
    [d] = (await client.get(url, headers=owner.headers)).json()["items"][0]["deliveries"]
    assert (d["state"], d["attempts"], d["last_error"]) == ("delivered", 3, None)
    last = probe.handled[-1]
    assert last.previous_claim_at is not None and last.previous_external_ref == "probe-9"
    assert len(probe.handled) == 3
    await dispatcher.run_once()  # nothing is due any more: no fourth call
    assert len(probe.handled) == 3
