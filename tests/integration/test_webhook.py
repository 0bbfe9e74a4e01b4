"""Webhooks: signed POSTs to a real HTTP receiver on loopback (tests/fakes/webhook_receiver.py).

The signature is checked here with a separate implementation of the Standard Webhooks spec, so a
mistake in integrations/webhook.py cannot hide behind itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from integrations.webhook import WebhookConfig, WebhookIntegration
from tests.fakes.webhook_receiver import WebhookReceiver
from webapp.deliveries.embedded import EmbeddedDispatcher
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.outbox.events import RESPONSE_DELETED, RESPONSE_SUBMITTED, RESPONSE_UPDATED, response_event
from webapp.plugins import FormContext, Outcome, Registry, Work, decode_config, load_integrations
from webapp.settings import Settings

NAME = QuestionDef(uuid.uuid4(), 0, QuestionKind.SHORT_TEXT, "Name", "", True, (), {}, False)
FORM = FormContext(uuid.uuid4(), "Harvest survey", 1, (NAME,))
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """Standard Webhooks verification, written from the spec (https://www.standardwebhooks.com/)."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def hook_settings(base: Settings | None = None, **extra) -> Settings:
    return replace(base or Settings(), webhook_allow_private=True, webhook_timeout=1.0, **extra)


@pytest.fixture
def webhook() -> WebhookIntegration:
    return WebhookIntegration(hook_settings())


def work(url: str, event_type: str = RESPONSE_SUBMITTED, *, secret: str = SECRET) -> Work:
    answers = None if event_type == RESPONSE_DELETED else [
        {"question_id": str(NAME.id), "kind": "short_text", "value": "Ada", "text": "Ada"}]
    event = response_event(event_type, form_id=FORM.form_id, form_version=1, response_id=uuid.uuid4(),
                           submitted_at=datetime.now(UTC), answers=answers)
    return Work(uuid.uuid4(), uuid.uuid4(), WebhookConfig(url=url, secret=secret), event, FORM, 1)


# ---- the handler -----------------------------------------------------------------------------------

@pytest.mark.parametrize("event_type", [RESPONSE_SUBMITTED, RESPONSE_UPDATED, RESPONSE_DELETED])
async def test_every_event_is_posted_as_signed_json(hook, webhook, event_type):
    item = work(hook.url, event_type)
    [result] = await webhook.handle([item])
    assert result.outcome == Outcome.DELIVERED and result.detail == "HTTP 200"
    [request] = hook.requests
    assert (request.method, request.path) == ("POST", "/hooks/formwright")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == item.event
    assert request.headers["webhook-id"] == item.event["event_id"]
    assert verify(SECRET, request.headers, request.body)
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), request.headers, request.body)
    assert not verify(SECRET, request.headers, request.body.replace(b"response.", b"Response."))


async def test_a_batch_posts_each_event_once_with_its_own_id(hook, webhook):
    batch = [work(hook.url) for _ in range(8)]
    results = await webhook.handle(batch)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 8
    assert sorted(r.headers["webhook-id"] for r in hook.requests) == sorted(w.event["event_id"] for w in batch)
    assert all(verify(SECRET, r.headers, r.body) for r in hook.requests)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_temporary_answers_are_retried(hook, webhook, status):
    hook.respond(status, body="try later", headers={"Retry-After": "30"})
    [result] = await webhook.handle([work(hook.url)])
    assert result.outcome == Outcome.RETRY and result.retry_after == 30.0
    assert result.detail == f"HTTP {status}: try later"


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_other_client_errors_fail_with_status_and_body_excerpt(hook, webhook, status):
    hook.respond(status, body="No such hook.\n" + "x" * 500)
    [result] = await webhook.handle([work(hook.url)])
    assert result.outcome == Outcome.FAILED
    assert result.detail.startswith(f"HTTP {status}: No such hook. xxx") and result.detail.endswith("…")
    assert len(result.detail) < 260


async def test_a_timeout_is_retried(hook, webhook):
    hook.hang_next(5)
    [result] = await webhook.handle([work(hook.url)])
    assert result.outcome == Outcome.RETRY and "did not answer within 1 s" in result.detail


async def test_a_refused_connection_is_retried(webhook):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [result] = await webhook.handle([work(f"http://127.0.0.1:{port}/hook")])
    assert result.outcome == Outcome.RETRY and "Could not connect" in result.detail


async def test_redirects_are_not_followed(hook, webhook):
    hook.respond(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    [result] = await webhook.handle([work(hook.url)])
    assert result.outcome == Outcome.FAILED and "redirects are not followed" in result.detail
    assert len(hook.requests) == 1


async def test_private_and_loopback_addresses_are_refused_unless_allowed(hook):
    strict = WebhookIntegration(replace(Settings(), webhook_timeout=1.0))
    port = hook.url.split(":")[2].split("/")[0]
    urls = [hook.url, f"http://localhost:{port}/hook", f"http://[::1]:{port}/hook", "http://10.1.2.3/hook",
            "http://169.254.169.254/latest/meta-data/", f"http://[::ffff:127.0.0.1]:{port}/hook"]
    results = await strict.handle([work(url) for url in urls])
    assert [r.outcome for r in results] == [Outcome.FAILED] * len(urls), results
    assert all("public addresses" in r.detail for r in results)
    assert "localhost resolves to" in results[1].detail  # checked where the name is resolved
    assert hook.requests == []


async def test_send_test_posts_a_marked_signed_event(hook, webhook):
    result = await webhook.send_test(WebhookConfig(url=hook.url, secret=SECRET), FORM)
    assert result.outcome == Outcome.DELIVERED
    [request] = hook.requests
    body = request.json()
    assert body["type"] == "webhook.test" and body["test"] is True and body["form_id"] == str(FORM.form_id)
    assert verify(SECRET, request.headers, request.body)


# ---- configuration ----------------------------------------------------------------------------------

def errors_of(raw: dict, *, allow_private: bool = False) -> dict[str, str]:
    webhook = WebhookIntegration(replace(Settings(), webhook_allow_private=allow_private))
    cfg, errors = decode_config(webhook, raw)
    if cfg is not None:
        errors = webhook.validate_config(cfg, FORM)
    return {e.field: e.message for e in errors}


def test_a_secret_is_generated_when_missing_and_kept_when_given():
    webhook = WebhookIntegration()
    first, _ = decode_config(webhook, {"url": "https://example.com/hook"})
    second, _ = decode_config(webhook, {"url": "https://example.com/hook", "secret": ""})
    for cfg in (first, second):
        assert cfg.secret.startswith("whsec_") and len(base64.b64decode(cfg.secret[6:])) == 32
    assert first.secret != second.secret
    kept, _ = decode_config(webhook, {"url": "https://example.com/hook", "secret": SECRET})
    assert kept.secret == SECRET
    assert errors_of({"url": "https://example.com/hook"}) == {}


@pytest.mark.parametrize(("raw", "field", "words"), [
    ({"url": "ftp://example.com/hook"}, "config.url", "http:// or https://"),
    ({"url": "https://user:pw@example.com/hook"}, "config.url", "credentials"),
    ({"url": "http://127.0.0.1:8000/hook"}, "config.url", "private or reserved"),
    ({"url": "http://192.168.1.10/hook"}, "config.url", "private or reserved"),
    ({"url": "http://localhost/hook"}, "config.url", "public addresses"),
    ({"url": "https://example.com:99999/"}, "config.url", "web address"),
    ({"url": ""}, "config.url", "length >= 1"),
    ({"url": "https://example.com/hook", "secret": "hunter2"}, "config.secret", "whsec_"),
    ({"url": "https://example.com/hook", "secret": "whsec_" + base64.b64encode(b"k" * 8).decode()},
     "config.secret", "24 to 64 bytes"),
])
def test_config_errors_are_reported_field_by_field(raw, field, words):
    errors = errors_of(raw)
    assert field in errors and words.lower() in errors[field].lower(), errors


def test_loopback_urls_are_accepted_when_the_setting_allows_them():
    assert errors_of({"url": "http://127.0.0.1:8000/hook"}, allow_private=True) == {}


# ---- end to end: API → outbox → embedded engine → receiver ----------------------------------------------

@pytest.fixture
def allow_loopback(settings):
    """The installed webhook integration (which the integrations API validates with) may use loopback."""
    installed = load_integrations().get("webhook")
    installed.configure(hook_settings(settings))
    yield
    installed.configure(None)


async def test_submissions_updates_and_deletions_reach_the_receiver_signed(
        client, owner, sessionmaker, settings, hook, allow_loopback):
    r = await client.post("/api/v1/forms", headers=owner.headers, json={
        "title": "Harvest survey", "status": "open", "questions": [{"text": "Name", "mandatory": True}]})
    assert r.status_code == 201, r.text
    form_id, name_id = r.json()["id"], r.json()["questions"][0]["id"]
    r = await client.post(f"/api/v1/forms/{form_id}/integrations", headers=owner.headers,
                          json={"kind": "webhook", "config": {"url": hook.url}})
    assert r.status_code == 201, r.text
    secret = r.json()["config"]["secret"]  # shown in full once, on creation
    r = await client.get(f"/api/v1/forms/{form_id}/integrations", headers=owner.headers)
    assert secret not in json.dumps(r.json())

    response_ids = []
    for name in ("Ada", "Grace", "Edsger"):
        r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {name_id: name}})
        assert r.status_code == 201, r.text
        response_ids.append(r.json()["id"])
    r = await client.patch(f"/api/v1/forms/{form_id}/responses/{response_ids[0]}", headers=owner.headers,
                           json={"answers": {name_id: "Ada L."}})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/forms/{form_id}/responses/{response_ids[1]}", headers=owner.headers)
    assert r.status_code == 204, r.text

    hook.respond(503, body="deploying")  # the first POST is refused: retried on the next tier
    dispatcher = EmbeddedDispatcher(sessionmaker, replace(settings, retry_tiers=(1,)),
                                    Registry(integrations={"webhook": WebhookIntegration(hook_settings(settings))}))
    await dispatcher.run_once()
    r = await client.get(f"/api/v1/forms/{form_id}/deliveries", headers=owner.headers)
    states = sorted(d["state"] for d in r.json()["items"])
    assert states == ["delivered"] * 4 + ["pending"]
    assert hook.wait_for(5, timeout=1)
    deadline = time.monotonic() + 10
    while len(hook.requests) < 6 and time.monotonic() < deadline:
        await dispatcher.run_once()
        hook.wait_for(6, timeout=0.2)
    assert len(hook.requests) == 6

    delivered = [r for r in hook.requests[:6] if r is not hook.requests[0]]
    events = [r.json() for r in delivered]
    assert sorted(e["type"] for e in events) == sorted(
        ["response.submitted"] * 3 + ["response.updated", "response.deleted"])
    assert len({r.headers["webhook-id"] for r in delivered}) == 5
    assert hook.requests[0].headers["webhook-id"] in {r.headers["webhook-id"] for r in delivered}
    assert all(verify(secret, r.headers, r.body) for r in hook.requests)
    updated = next(e for e in events if e["type"] == "response.updated")
    assert updated["response_id"] == response_ids[0] and updated["answers"][0]["text"] == "Ada L."
    deleted = next(e for e in events if e["type"] == "response.deleted")
    assert deleted["response_id"] == response_ids[1] and deleted["answers"] is None
    r = await client.get(f"/api/v1/forms/{form_id}/deliveries", headers=owner.headers)
    assert {d["state"] for d in r.json()["items"]} == {"delivered"}
