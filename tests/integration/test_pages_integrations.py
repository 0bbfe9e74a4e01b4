"""The Integrations tab in the browser: connect, edit, test, switch off, delete, and see or retry
deliveries. Built-in kinds (webhook, sms) are used as an owner would; the webhook test message goes
to a real receiver on loopback, which the installed webhook integration is allowed to reach here."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Annotated, Literal

import msgspec
import pytest
from sqlalchemy import select
from uuid_utils.compat import uuid7

from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_pages_accounts import errors_in, log_in
from webapp.deliveries.models import Delivery, DeliveryState, FormIntegration
from webapp.deliveries.pages import config_fields, field_values, parse_config
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.outbox.models import OutboxEvent
from webapp.plugins import load_integrations

TOKEN_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
HEADER_RE = re.compile(r"hx-headers='\{\"X-CSRFToken\": \"([0-9a-f]+)\"\}'")


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


async def token(client, path: str) -> str:
    r = await client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return (TOKEN_RE.search(r.text) or HEADER_RE.search(r.text)).group(1)


async def post(client, path: str, data: dict, *, token_from: str, htmx: bool = False):
    csrf = await token(client, token_from)
    headers = {"HX-Request": "true", "X-CSRFToken": csrf} if htmx else {}
    body = data if htmx else {"_csrf_token": csrf, **data}
    return await client.post(path, data=body, headers=headers, follow_redirects=False)


async def signed_in_form(client, owner, questions=None) -> tuple[str, list[str]]:
    questions = questions or [{"text": "Name"}, {"text": "Mobile", "kind": "phone"}, {"text": "Email", "kind": "email"}]
    r = await client.post("/api/v1/forms", json={"title": "Harvest", "status": "open", "questions": questions},
                          headers=owner.headers)
    assert r.status_code == 201
    r2 = await log_in(client, owner.email)
    assert r2.status_code == 303
    return r.json()["id"], [q["id"] for q in r.json()["questions"]]


async def stored(sessionmaker) -> list[FormIntegration]:
    async with sessionmaker() as s:
        return list(await s.scalars(select(FormIntegration).order_by(FormIntegration.created_at)))


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def loopback_webhooks(settings):
    """Let the installed webhook integration reach the loopback receiver (as WEBHOOK_ALLOW_PRIVATE would)."""
    installed = load_integrations().get("webhook")
    installed.configure(replace(settings, webhook_allow_private=True, webhook_timeout=2.0))
    yield
    installed.configure(None)


async def test_pages_need_a_login(client, owner):
    fid = str(uuid.uuid4())
    for path in [f"/forms/{fid}/integrations", f"/forms/{fid}/deliveries", f"/forms/{fid}/integrations/new?kind=sms"]:
        r = await client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


async def test_connect_a_webhook_with_inline_errors_then_see_it_listed_with_its_secret_masked(
        client, owner, sessionmaker):
    fid, _ = await signed_in_form(client, owner)
    r = await client.get(f"/forms/{fid}/integrations")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "No integrations yet" in page
    for title in ["Webhook", "Twilio SMS", "Google Sheets"]:
        assert f"+ {title}" in page
    assert 'aria-current="page">Integrations' in r.text

    new = f"/forms/{fid}/integrations/new"
    r = await client.get(f"{new}?kind=webhook")
    assert r.status_code == 200
    assert 'name="url"' in r.text and 'type="password"' in r.text and "Where to POST each event" in r.text

    r = await post(client, new, {"kind": "webhook", "name": "Warehouse", "url": "", "enabled": "on"},
                   token_from=f"{new}?kind=webhook")
    assert r.status_code == 422
    assert errors_in(r.text) == ["This field is required."]
    assert 'id="f-url"' in r.text and "There is a problem" in r.text
    r = await post(client, new, {"kind": "webhook", "name": "Warehouse", "url": "http://127.0.0.1/hook", "enabled": "on"},
                   token_from=f"{new}?kind=webhook")
    assert r.status_code == 422
    [error] = errors_in(r.text)
    assert "private" in error.lower() or "loopback" in error.lower()
    assert 'value="http://127.0.0.1/hook"' in r.text  # what was typed stays
    assert await stored(sessionmaker) == []

    r = await post(client, new, {"kind": "webhook", "name": "Warehouse", "url": "https://example.com/hooks/fw",
                                 "enabled": "on"}, token_from=f"{new}?kind=webhook")
    assert r.status_code == 201, r.text
    [row] = await stored(sessionmaker)
    assert row.kind == "webhook" and row.enabled and row.config["secret"].startswith("whsec_")
    # The generated signing secret is shown this once, to be copied to the receiving side.
    assert "“Warehouse” is connected" in text_of(r.text) and f'value="{row.config["secret"]}"' in r.text
    assert row.config["secret"] not in "".join(r.headers.get_list("set-cookie"))

    r = await client.get(f"/forms/{fid}/integrations")
    page = text_of(r.text)
    assert "Warehouse" in page and "URL https://example.com/hooks/fw" in page
    assert row.config["secret"] not in r.text and "Secret ••••••" + row.config["secret"][-4:] in page
    assert "Nothing delivered yet." in page and "is connected" not in page


async def test_sms_form_offers_only_phone_questions_and_reports_template_errors(client, owner, sessionmaker):
    fid, (name, phone, email) = await signed_in_form(client, owner)
    new = f"/forms/{fid}/integrations/new"
    r = await client.get(f"{new}?kind=sms")
    assert r.status_code == 200
    select_html = re.search(r'<select id="f-phone_question_id".*?</select>', r.text, re.S).group(0)
    assert f'value="{phone}"' in select_html and name not in select_html and email not in select_html
    assert "Mobile (phone)" in select_html

    data = {"kind": "sms", "name": "Thank-you text", "phone_question_id": phone, "enabled": "on",
            "template": "Hi {{answers.nope}}", "from_number": "+14155550100",
            "messaging_service_sid": "MG" + "0" * 32}
    r = await client.get(f"{new}?kind=sms")
    assert "Placeholders for this form's answers" in r.text and f"{{{{answers.{phone.replace('-', '')[-8:]}}}}}" in r.text
    r = await post(client, new, {**data, "phone_question_id": ""}, token_from=f"{new}?kind=sms")
    assert r.status_code == 422 and errors_in(r.text) == ["This field is required."]
    assert "Phone question: This field is required." in text_of(r.text)  # the summary names the field
    r = await post(client, new, data, token_from=f"{new}?kind=sms")
    assert r.status_code == 422
    errors = errors_in(r.text)
    assert len(errors) == 2, errors
    assert any("answers.nope" in e for e in errors) and any("not both" in e for e in errors)
    assert await stored(sessionmaker) == []

    data.update(template="Thanks for answering {{form.title}}!", messaging_service_sid="")
    r = await post(client, new, data, token_from=f"{new}?kind=sms")
    assert r.status_code == 303, errors_in(r.text)  # no secret to show: straight back to the list
    [row] = await stored(sessionmaker)
    assert row.config["phone_question_id"] == phone and row.config["messaging_service_sid"] is None
    r = await client.get(f"/forms/{fid}/integrations")
    page = text_of(r.text)
    assert "Connected “Thank-you text”" in page and "Phone question “Mobile”" in page
    assert "Thanks for answering Harvest!" in page and "segment" in page  # the preview with its length

    # While it is on, the phone question is required from respondents.
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada"}})
    assert r.status_code == 422 and r.json()["errors"][0]["question_id"] == phone


async def test_edit_keeps_a_secret_left_blank_then_switch_off_and_delete(client, owner, sessionmaker):
    fid, _ = await signed_in_form(client, owner)
    new = f"/forms/{fid}/integrations/new"
    await post(client, new, {"kind": "webhook", "name": "Hook", "url": "https://example.com/a", "enabled": "on"},
               token_from=f"{new}?kind=webhook")
    [row] = await stored(sessionmaker)
    secret = row.config["secret"]
    edit = f"/forms/{fid}/integrations/{row.id}/edit"
    r = await client.get(edit)
    assert r.status_code == 200 and secret not in r.text and "Leave blank to keep it" in r.text
    assert 'value="https://example.com/a"' in r.text

    r = await post(client, edit, {"name": "Hook 2", "url": "nota url", "secret": "", "enabled": "on"}, token_from=edit)
    assert r.status_code == 422 and len(errors_in(r.text)) == 1
    [unchanged] = await stored(sessionmaker)
    assert unchanged.name == "Hook" and unchanged.config["url"] == "https://example.com/a"

    r = await post(client, edit, {"name": "Hook 2", "url": "https://example.com/b", "secret": "", "enabled": "on"},
                   token_from=edit)
    assert r.status_code == 303
    [row] = await stored(sessionmaker)
    assert (row.name, row.config["url"], row.config["secret"]) == ("Hook 2", "https://example.com/b", secret)

    index = f"/forms/{fid}/integrations"
    r = await post(client, f"{index}/{row.id}/toggle", {}, token_from=index)
    assert r.status_code == 303
    [row] = await stored(sessionmaker)
    assert row.enabled is False
    assert "“Hook 2” is now off." in text_of((await client.get(index)).text)

    r = await client.get(f"{index}/{row.id}/delete")
    assert r.status_code == 200 and "0 deliveries" in text_of(r.text)
    r = await post(client, f"{index}/{row.id}/delete", {}, token_from=index)
    assert r.status_code == 303 and await stored(sessionmaker) == []
    assert "Disconnected “Hook 2”." in text_of((await client.get(index)).text)


async def test_send_test_shows_the_outcome_inline(client, owner, sessionmaker, hook, loopback_webhooks):
    fid, _ = await signed_in_form(client, owner)
    new = f"/forms/{fid}/integrations/new"
    r = await post(client, new, {"kind": "webhook", "name": "Local", "url": hook.url, "enabled": "on"},
                   token_from=f"{new}?kind=webhook")
    assert r.status_code == 201, errors_in(r.text)
    [row] = await stored(sessionmaker)
    index = f"/forms/{fid}/integrations"
    test_url = f"{index}/{row.id}/test"
    assert f'hx-post="{test_url}"' in (await client.get(index)).text

    r = await post(client, test_url, {}, token_from=index, htmx=True)
    assert r.status_code == 200
    assert 'data-test-outcome="delivered"' in r.text and "Test sent" in text_of(r.text)
    assert "<html" not in r.text  # a fragment for the card, not a page
    assert hook.wait_for(1) and len(hook.requests) == 1

    hook.respond(404, body="no such hook")
    r = await post(client, test_url, {}, token_from=index)  # without JavaScript: the whole page
    assert r.status_code == 200 and "<html" in r.text
    assert 'data-test-outcome="failed"' in r.text and "404" in text_of(r.text)


async def _ledger(sessionmaker, integration_id, form_id, response_id, event_id, state, error=None, minute=0):
    t = datetime(2026, 1, 5, 12, tzinfo=UTC) + timedelta(minutes=minute)
    async with sessionmaker() as s, s.begin():
        d = Delivery(id=uuid7(), integration_id=integration_id, form_id=uuid.UUID(form_id),
                     response_id=uuid.UUID(response_id), event_id=event_id, event_type="response.submitted",
                     state=state, attempts=3, last_error=error, created_at=t, updated_at=t)
        s.add(d)
    return d.id


async def test_deliveries_are_shown_with_state_and_error_and_can_be_retried(client, owner, sessionmaker):
    fid, (name, *_rest) = await signed_in_form(client, owner)
    new = f"/forms/{fid}/integrations/new"
    await post(client, new, {"kind": "webhook", "name": "Hook", "url": "https://example.com/a", "enabled": "on"},
               token_from=f"{new}?kind=webhook")
    [row] = await stored(sessionmaker)
    rid = (await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada"}})).json()["id"]
    async with sessionmaker() as s:
        eid = await s.scalar(select(OutboxEvent.event_id).where(OutboxEvent.response_id == uuid.UUID(rid)))
    failed = await _ledger(sessionmaker, row.id, fid, rid, eid, DeliveryState.FAILED, "HTTP 410 from example.com")
    await _ledger(sessionmaker, row.id, fid, rid, uuid7(), DeliveryState.DELIVERED, minute=1)

    r = await client.get(f"/forms/{fid}/deliveries")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Failed" in page and "Delivered" in page and "HTTP 410 from example.com" in page
    assert r.text.count('action="/deliveries/') == 1  # only the failed one offers Retry
    r = await client.get(f"/forms/{fid}/deliveries?state=delivered")
    assert "HTTP 410" not in r.text and "Delivered" in text_of(r.text)
    assert (await client.get(f"/forms/{fid}/deliveries?state=lost")).status_code == 400

    # The tab shows what needs attention, and the per-response page lists each integration.
    index = text_of((await client.get(f"/forms/{fid}/integrations")).text)
    assert "Needs attention" in index and "HTTP 410 from example.com" in index
    r = await client.get(f"/forms/{fid}/responses/{rid}/deliveries")
    assert r.status_code == 200 and "Hook" in text_of(r.text) and "Retry" in r.text

    r = await post(client, f"/deliveries/{failed}/retry", {"next": f"/forms/{fid}/deliveries", "layout": "row"},
                   token_from=f"/forms/{fid}/deliveries", htmx=True)
    assert r.status_code == 200
    assert f'id="delivery-{failed}"' in r.text and "Waiting" in text_of(r.text) and "Retry" not in r.text
    async with sessionmaker() as s:
        assert await s.scalar(select(Delivery.state).where(Delivery.id == failed)) == DeliveryState.PENDING
        events = list(await s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "delivery.retry")))
    assert len(events) == 1 and events[0].payload["delivery_id"] == str(failed)

    # Without JavaScript, a second retry comes back to the list with the reason.
    r = await post(client, f"/deliveries/{failed}/retry", {"next": f"/forms/{fid}/deliveries"},
                   token_from=f"/forms/{fid}/deliveries")
    assert r.status_code == 303 and r.headers["location"] == f"/forms/{fid}/deliveries"
    assert "only failed, dead or unknown deliveries can be retried" in text_of(
        (await client.get(r.headers["location"])).text)


async def test_other_people_get_404_everywhere(client, owner, make_owner, sessionmaker):
    fid, (name, *_rest) = await signed_in_form(client, owner)
    new = f"/forms/{fid}/integrations/new"
    await post(client, new, {"kind": "webhook", "name": "Hook", "url": "https://example.com/a", "enabled": "on"},
               token_from=f"{new}?kind=webhook")
    [row] = await stored(sessionmaker)
    rid = (await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada"}})).json()["id"]
    failed = await _ledger(sessionmaker, row.id, fid, rid, uuid7(), DeliveryState.FAILED, "x")

    intruder = await make_owner()
    await client.get("/logout")
    assert (await log_in(client, intruder.email)).status_code == 303
    base = f"/forms/{fid}/integrations"
    for path in [base, f"{base}/new?kind=webhook", f"{base}/{row.id}/edit", f"{base}/{row.id}/delete",
                 f"/forms/{fid}/deliveries", f"/forms/{fid}/responses/{rid}/deliveries"]:
        r = await client.get(path)
        assert r.status_code == 404, path
    for path in [f"{base}/new", f"{base}/{row.id}/edit", f"{base}/{row.id}/toggle", f"{base}/{row.id}/test",
                 f"{base}/{row.id}/delete", f"/deliveries/{failed}/retry"]:
        r = await post(client, path, {"kind": "webhook", "name": "x", "url": "https://evil.example"},
                       token_from="/forms")
        assert r.status_code == 404, path
    [still] = await stored(sessionmaker)
    assert still.name == "Hook" and still.enabled
    for path in [f"{base}/not-an-id/edit", f"/forms/{fid}/integrations/new?kind=fax"]:
        assert (await client.get(path)).status_code == 404


class ThingConfig(msgspec.Struct):
    endpoint_url: Annotated[str, msgspec.Meta(description="Where to send")]
    api_key: str
    mode: Literal["fast", "safe"] = "safe"
    batch: int = 10
    verbose: bool = False
    headers: dict[str, str] = {}
    contact_question_id: uuid.UUID | None = None


class Thing:
    kind, title, config_schema, batch_size = "thing", "Thing", ThingConfig, 1


def test_config_forms_follow_the_schema_of_any_integration():
    """A third-party integration gets a usable settings form from its msgspec config alone."""
    q = QuestionDef(id=uuid.uuid4(), position=0, kind=QuestionKind.EMAIL, text="Email", help_text="", mandatory=False,
                    options=(), constraints={}, archived=False)
    gone = replace(q, id=uuid.uuid4(), text="Old", archived=True)
    fields = {f.name: f for f in config_fields(Thing(), (q, gone))}
    assert {n: f.widget for n, f in fields.items()} == {
        "endpoint_url": "url", "api_key": "password", "mode": "select", "batch": "number", "verbose": "checkbox",
        "headers": "json", "contact_question_id": "select"}
    assert fields["endpoint_url"].label == "Endpoint URL" and fields["endpoint_url"].help == "Where to send"
    assert fields["api_key"].required and not fields["mode"].required
    assert fields["contact_question_id"].choices == [(str(q.id), "Email (email)")]  # archived ones are not offered
    assert fields["mode"].choices == [("fast", "fast"), ("safe", "safe")]
    values = field_values(list(fields.values()), {"api_key": "k" * 20, "headers": {"a": "b"}}, editing=True)
    assert values["api_key"] == "" and values["mode"] == "safe" and values["batch"] == 10
    assert values["headers"] == '{\n  "a": "b"\n}'

    posted = {"endpoint_url": "https://x.example", "api_key": "", "mode": "fast", "batch": "25",
              "headers": '{"X-Team": "ops"}', "contact_question_id": ""}
    config, errors = parse_config(list(fields.values()), posted, editing=True)
    assert errors == {}
    assert config == {"endpoint_url": "https://x.example", "mode": "fast", "batch": "25", "verbose": False,
                      "headers": {"X-Team": "ops"}, "contact_question_id": None}  # blank secret: kept as stored
    decoded = msgspec.convert({**config, "api_key": "k"}, ThingConfig, strict=False)
    assert decoded.batch == 25 and decoded.headers == {"X-Team": "ops"}
    _, errors = parse_config(list(fields.values()), {**posted, "headers": "{oops", "endpoint_url": " "}, editing=False)
    assert errors["endpoint_url"] == "This field is required." and errors["api_key"] == "This field is required."
    assert errors["headers"].startswith("Write valid JSON")
