"""Twilio SMS: the real twilio-python client against the fake Twilio server (tests/fakes/twilio.py).

First the handler on its own (Work items built by hand), then end to end: the JSON API, the outbox,
the embedded delivery engine and the ledger, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from integrations.sms import SmsConfig, SmsIntegration
from integrations.templating import short_key
from tests.fakes.twilio import FakeTwilio
from tests.pipeline_fixtures import pipeline_env, wait_until
from webapp.deliveries.embedded import EmbeddedDispatcher
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.outbox.events import RESPONSE_DELETED, RESPONSE_SUBMITTED, RESPONSE_UPDATED, response_event
from webapp.plugins import FormContext, Outcome, Registry, Work, decode_config
from webapp.settings import Settings

pytest_plugins = ("tests.pipeline_fixtures",)

SENDER = "+14155550100"
ALICE = "+14155550101"
SERVICE_SID = "MG" + "ab" * 16

NAME = QuestionDef(uuid.uuid4(), 0, QuestionKind.SHORT_TEXT, "Name", "", True, (), {}, False)
PHONE = QuestionDef(uuid.uuid4(), 1, QuestionKind.PHONE, "Phone", "", True, (), {}, False)
OLD_PHONE = QuestionDef(uuid.uuid4(), 2, QuestionKind.PHONE, "Old phone", "", False, (), {}, True)
FORM = FormContext(uuid.uuid4(), "Harvest survey", 1, (NAME, PHONE, OLD_PHONE))
TEMPLATE = f"Hi {{{{answers.{short_key(NAME.id)}}}}}, thanks for answering {{{{form.title}}}}."


@pytest.fixture
def fake():
    with FakeTwilio() as server:
        yield server


def twilio_settings(fake: FakeTwilio, base: Settings | None = None, **extra) -> Settings:
    return replace(base or Settings(), twilio_api_url=fake.url, twilio_account_sid=fake.account_sid,
                   twilio_auth_token=fake.auth_token, twilio_timeout=1.0, **extra)


@pytest.fixture
def sms(fake) -> SmsIntegration:
    return SmsIntegration(twilio_settings(fake))


def config(**changes) -> SmsConfig:
    return SmsConfig(**{"phone_question_id": PHONE.id, "template": TEMPLATE, "from_number": SENDER, **changes})


def work(name: str = "Ada", phone: str = ALICE, *, event_type: str = RESPONSE_SUBMITTED, cfg: SmsConfig | None = None,
         **extra) -> Work:
    answers = [{"question_id": str(NAME.id), "kind": "short_text", "value": name, "text": name},
               {"question_id": str(PHONE.id), "kind": "phone", "value": phone, "text": phone}]
    event = response_event(event_type, form_id=FORM.form_id, form_version=1, response_id=uuid.uuid4(),
                           submitted_at=datetime.now(UTC),
                           answers=None if event_type == RESPONSE_DELETED else answers)
    return Work(uuid.uuid4(), uuid.uuid4(), cfg or config(), event, FORM, 1, **extra)


# ---- the handler -----------------------------------------------------------------------------------

async def test_a_new_response_sends_one_message_with_the_rendered_body(fake, sms):
    [result] = await sms.handle([work()])
    assert result.outcome == Outcome.DELIVERED, result
    [message] = fake.messages
    assert (message["to"], message["from"], message["body"]) == (
        ALICE, SENDER, "Hi Ada, thanks for answering Harvest survey.")
    assert result.external_ref == message["sid"] and message["sid"] in result.detail
    [create] = fake.creates()
    assert create.user == fake.account_sid  # Basic auth with the account sid (the token is checked by the fake)


async def test_a_messaging_service_is_used_as_the_sender(fake, sms):
    [result] = await sms.handle([work(cfg=config(from_number=None, messaging_service_sid=SERVICE_SID))])
    assert result.outcome == Outcome.DELIVERED, result
    [create] = fake.creates()
    assert create.form["MessagingServiceSid"] == [SERVICE_SID] and "From" not in create.form


@pytest.mark.parametrize("event_type", [RESPONSE_UPDATED, RESPONSE_DELETED])
async def test_updates_and_deletions_send_nothing(fake, sms, event_type):
    [result] = await sms.handle([work(event_type=event_type)])
    assert result.outcome == Outcome.DELIVERED and result.detail.startswith("Not applicable")
    assert fake.requests == []


async def test_an_answer_is_never_read_as_a_placeholder(fake, sms):
    await sms.handle([work(name="{{form.title}} {{answers." + str(PHONE.id) + "}}")])
    assert fake.bodies() == ["Hi {{form.title}} {{answers." + str(PHONE.id) + "}}, thanks for answering Harvest survey."]


async def test_a_batch_sends_one_message_per_response(fake, sms):
    batch = [work(f"Person {i}", f"+1415555{i:04d}") for i in range(200, 212)]
    results = await sms.handle(batch)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 12
    assert sorted((m["to"], m["body"]) for m in fake.messages) == sorted(
        (f"+1415555{i:04d}", f"Hi Person {i}, thanks for answering Harvest survey.") for i in range(200, 212))
    assert {r.external_ref for r in results} == {m["sid"] for m in fake.messages}


async def test_a_long_message_is_cut_to_twilios_limit(fake, sms):
    [result] = await sms.handle([work(name="x" * 2000)])
    assert result.outcome == Outcome.DELIVERED, result
    [body] = fake.bodies()
    assert len(body) == 1600 and body.endswith("…")


async def test_a_timeout_after_twilio_accepted_is_unknown_then_reconciled_not_resent(fake, sms):
    fake.hang_next(5)  # Twilio stores the message but answers after the client's 1 s timeout
    item = work()
    [first] = await sms.handle([item])
    assert first.outcome == Outcome.UNKNOWN and "looked up before any resend" in first.detail
    assert len(fake.messages) == 1
    [second] = await sms.handle([replace(item, attempt=2, previous_claim_at=datetime.now(UTC) - timedelta(seconds=5))])
    assert second.outcome == Outcome.DELIVERED, second
    assert second.external_ref == fake.messages[0]["sid"] and "not resent" in second.detail
    assert len(fake.messages) == 1 and len(fake.creates()) == 1
    lookups = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/Messages.json")]
    assert lookups and all(r.query["To"] == [ALICE] for r in lookups)


async def test_reconciling_finds_a_message_still_queued_without_a_sent_date(fake, sms):
    fake.auto_send = False
    fake.hang_next(5)
    item = work()
    [first] = await sms.handle([item])
    assert first.outcome == Outcome.UNKNOWN and fake.messages[0]["date_sent"] is None
    [second] = await sms.handle([replace(item, attempt=2, previous_claim_at=datetime.now(UTC))])
    assert second.outcome == Outcome.DELIVERED and second.external_ref == fake.messages[0]["sid"]
    assert len(fake.creates()) == 1


async def test_reconciling_sends_when_the_earlier_attempt_sent_nothing(fake, sms):
    # An identical message to the same number from well before the claim is someone else's.
    await sms.handle([work()])
    fake.messages[0]["date_created"] = fake.messages[0]["date_sent"] = datetime.now(UTC) - timedelta(hours=1)
    [result] = await sms.handle([work(previous_claim_at=datetime.now(UTC))])
    assert result.outcome == Outcome.DELIVERED and result.external_ref == fake.messages[1]["sid"]
    assert len(fake.messages) == 2


async def test_a_500_after_storing_is_unknown_and_found_by_its_sid_or_lookup(fake, sms):
    fake.fail_next(500, stored=True)
    item = work()
    [first] = await sms.handle([item])
    assert first.outcome == Outcome.UNKNOWN and "500" in first.detail
    [second] = await sms.handle([replace(item, attempt=2, previous_claim_at=datetime.now(UTC))])
    assert second.outcome == Outcome.DELIVERED and len(fake.messages) == 1 and len(fake.creates()) == 1


async def test_a_known_sid_is_fetched_directly(fake, sms):
    await sms.handle([work()])
    sid = fake.messages[0]["sid"]
    [result] = await sms.handle([work(previous_claim_at=datetime.now(UTC), previous_external_ref=sid)])
    assert result.outcome == Outcome.DELIVERED and result.external_ref == sid
    assert len(fake.creates()) == 1
    assert any(r.path.endswith(f"/Messages/{sid}.json") for r in fake.requests)


async def test_when_the_lookup_fails_nothing_is_sent_and_it_stays_unknown(fake, sms):
    fake.fail_next(500, on="list")
    [result] = await sms.handle([work(previous_claim_at=datetime.now(UTC))])
    assert result.outcome == Outcome.UNKNOWN and "looked up again" in result.detail
    assert fake.creates() == [] and fake.messages == []


async def test_429_is_retried_with_the_wait_twilio_asked_for(fake, sms):
    fake.fail_next(429, retry_after=7)
    [result] = await sms.handle([work()])
    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 7.0)
    assert fake.messages == []
    [again] = await sms.handle([work()])
    assert again.outcome == Outcome.DELIVERED and len(fake.messages) == 1


@pytest.mark.parametrize(("code", "reason"), [
    (21211, "The number is not a valid phone number (Twilio 21211)."),
    (21610, "The recipient has opted out of messages from this sender (they replied STOP) (Twilio 21610)."),
    (21614, "The number is not a mobile number (Twilio 21614)."),
])
async def test_permanent_errors_fail_with_a_readable_reason(fake, sms, code, reason):
    fake.fail_number(ALICE, code)
    [result] = await sms.handle([work()])
    assert (result.outcome, result.detail) == (Outcome.FAILED, reason)
    assert fake.messages == []


async def test_wrong_credentials_fail_and_say_which_settings(fake):
    sms = SmsIntegration(replace(twilio_settings(fake), twilio_auth_token="wrong"))
    [result] = await sms.handle([work()])
    assert result.outcome == Outcome.FAILED and "TWILIO_AUTH_TOKEN" in result.detail and "20003" in result.detail
    assert fake.messages == []
    assert "wrong" not in result.detail


async def test_missing_credentials_fail_without_calling_twilio(fake):
    sms = SmsIntegration(replace(twilio_settings(fake), twilio_account_sid=""))
    [result] = await sms.handle([work()])
    assert result.outcome == Outcome.FAILED and "TWILIO_ACCOUNT_SID" in result.detail
    assert fake.requests == []


async def test_twilio_unreachable_is_retried_as_nothing_was_sent():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sms = SmsIntegration(replace(Settings(), twilio_api_url=f"http://127.0.0.1:{port}",
                                 twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t", twilio_timeout=1.0))
    [result] = await sms.handle([work()])
    assert result.outcome == Outcome.RETRY and "nothing was sent" in result.detail


async def test_a_response_without_a_usable_number_fails_without_calling(fake, sms):
    [missing, bad] = await sms.handle([work(phone=""), work(phone="12345")])
    assert missing.outcome == bad.outcome == Outcome.FAILED
    assert "no answer to the phone question" in missing.detail and "E.164" in bad.detail
    assert fake.requests == []


async def test_send_test_checks_the_credentials_and_shows_the_length(fake, sms):
    result = await sms.send_test(config(), FORM)
    assert result.outcome == Outcome.DELIVERED, result
    assert "1 SMS segment (GSM-7)" in result.detail and fake.messages == []
    wrong = SmsIntegration(replace(twilio_settings(fake), twilio_auth_token="nope"))
    result = await wrong.send_test(config(), FORM)
    assert result.outcome == Outcome.FAILED and "TWILIO_AUTH_TOKEN" in result.detail


# ---- configuration ----------------------------------------------------------------------------------

def errors_of(raw: dict) -> dict[str, str]:
    sms = SmsIntegration()
    cfg, errors = decode_config(sms, raw)
    if cfg is not None:
        errors = sms.validate_config(cfg, FORM)
    return {e.field: e.message for e in errors}


def test_a_good_config_passes_and_requires_the_phone_question():
    raw = {"phone_question_id": str(PHONE.id), "template": TEMPLATE, "from_number": SENDER}
    assert errors_of(raw) == {}
    cfg, _ = decode_config(SmsIntegration(), raw)
    assert list(SmsIntegration().required_questions(cfg)) == [PHONE.id]
    assert errors_of({**raw, "from_number": "", "messaging_service_sid": SERVICE_SID}) == {}


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"phone_question_id": str(NAME.id)}, "config.phone_question_id", "“Name” is not a phone question"),
    ({"phone_question_id": str(uuid.uuid4())}, "config.phone_question_id", "Choose a phone question of this form"),
    ({"phone_question_id": str(OLD_PHONE.id)}, "config.phone_question_id", "archived"),
    ({"phone_question_id": "nope"}, "config.phone_question_id", "uuid"),
    ({"template": "Hi {{answers.nothere}}"}, "config.template", "does not name a question"),
    ({"template": "Hi {{name"}, "config.template", "not closed"),
    ({"template": "x" * 1601}, "config.template", "length <= 1600"),
    ({"template": "   "}, "config.template", "Write the message"),
    ({"messaging_service_sid": SERVICE_SID}, "config.from_number", "not both"),
    ({"from_number": None}, "config.from_number", "Give a sender number"),
    ({"from_number": "4155550100"}, "config.from_number", "E.164"),
    ({"from_number": None, "messaging_service_sid": "MG123"}, "config.messaging_service_sid", "32 hex digits"),
])
def test_config_errors_are_reported_field_by_field(changes, field, words):
    raw = {"phone_question_id": str(PHONE.id), "template": TEMPLATE, "from_number": SENDER, **changes}
    errors = errors_of(raw)
    assert field in errors and words.lower() in errors[field].lower(), errors


def test_preview_reports_segments_of_a_sample_message():
    preview = SmsIntegration().preview(config(template="Привет {{form.title}}! " * 4), FORM)
    assert (preview["encoding"], preview["segments"]) == ("UCS-2", 2)
    assert preview["text"].startswith("Привет Harvest survey!")
    schema = msgspec.json.schema(SmsConfig)
    assert "phone_question_id" in schema["$defs"]["SmsConfig"]["required"]


# ---- end to end: API → outbox → embedded engine → Twilio ----------------------------------------------

async def open_form(client, owner) -> tuple[str, str, str]:
    r = await client.post("/api/v1/forms", headers=owner.headers, json={
        "title": "Harvest survey", "status": "open",
        "questions": [{"text": "Name", "mandatory": True}, {"text": "Phone", "kind": "phone"}]})
    assert r.status_code == 201, r.text
    form = r.json()
    return form["id"], form["questions"][0]["id"], form["questions"][1]["id"]


async def connect_sms(client, owner, form_id: str, name_id: str, phone_id: str) -> dict:
    r = await client.post(f"/api/v1/forms/{form_id}/integrations", headers=owner.headers, json={
        "kind": "sms", "name": "Thank-you text",
        "config": {"phone_question_id": phone_id, "from_number": SENDER,
                   "template": f"Thanks {{{{answers.{name_id}}}}} for answering {{{{form.title}}}}."}})
    assert r.status_code == 201, r.text
    return r.json()


async def deliver(sessionmaker, settings: Settings, sms: SmsIntegration) -> None:
    """Run the embedded dispatcher until it finds nothing more to do."""
    dispatcher = EmbeddedDispatcher(sessionmaker, settings, Registry(integrations={"sms": sms}))
    for _ in range(20):
        if await dispatcher.run_once() == 0:
            return
    raise AssertionError("the dispatcher kept finding work")


async def deliveries(client, owner, form_id: str) -> list[dict]:
    r = await client.get(f"/api/v1/forms/{form_id}/deliveries", headers=owner.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_n_submissions_send_exactly_n_messages(client, owner, sessionmaker, settings, fake):
    form_id, name_id, phone_id = await open_form(client, owner)
    await connect_sms(client, owner, form_id, name_id, phone_id)
    people = [(f"Person {i}", f"+1415555{i:04d}") for i in range(300, 306)]
    response_ids = []
    for name, phone in people:
        r = await client.post(f"/api/v1/forms/{form_id}/responses",
                              json={"answers": {name_id: name, phone_id: phone}})
        assert r.status_code == 201, r.text
        response_ids.append(r.json()["id"])
    sms = SmsIntegration(twilio_settings(fake, settings))
    await deliver(sessionmaker, settings, sms)
    assert sorted((m["to"], m["body"]) for m in fake.messages) == sorted(
        (phone, f"Thanks {name} for answering Harvest survey.") for name, phone in people)
    rows = await deliveries(client, owner, form_id)
    assert sorted(d["response_id"] for d in rows) == sorted(response_ids)
    assert {d["state"] for d in rows} == {"delivered"}
    assert {d["external_ref"] for d in rows} == {m["sid"] for m in fake.messages}

    # Editing and deleting responses texts nobody; running again sends nothing twice.
    r = await client.patch(f"/api/v1/forms/{form_id}/responses/{response_ids[0]}", headers=owner.headers,
                           json={"answers": {name_id: "Renamed"}})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/forms/{form_id}/responses/{response_ids[1]}", headers=owner.headers)
    assert r.status_code == 204, r.text
    await deliver(sessionmaker, settings, sms)
    assert len(fake.messages) == len(people) and len(fake.creates()) == len(people)
    rows = await deliveries(client, owner, form_id)
    assert len(rows) == len(people) + 2 and {d["state"] for d in rows} == {"delivered"}


async def test_phone_must_be_answered_validly_while_sms_is_active(client, owner, fake):
    form_id, name_id, phone_id = await open_form(client, owner)
    r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {name_id: "Ada"}})
    assert r.status_code == 201, r.text  # the phone question is optional on its own
    await connect_sms(client, owner, form_id, name_id, phone_id)
    r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {name_id: "Ada"}})
    assert r.status_code == 422
    assert [e["question_id"] for e in r.json()["errors"]] == [phone_id]
    r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {name_id: "Ada", phone_id: "12"}})
    assert r.status_code == 422 and r.json()["errors"][0]["question_id"] == phone_id


async def test_a_twilio_timeout_is_unknown_then_reconciled_without_a_second_message(
        client, owner, sessionmaker, settings, fake):
    form_id, name_id, phone_id = await open_form(client, owner)
    await connect_sms(client, owner, form_id, name_id, phone_id)
    r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {name_id: "Ada", phone_id: ALICE}})
    assert r.status_code == 201, r.text
    sms = SmsIntegration(twilio_settings(fake, settings))
    fake.hang_next(5)  # accepted and stored, but the answer comes after the 1 s client timeout
    await deliver(sessionmaker, settings, sms)
    [row] = await deliveries(client, owner, form_id)
    assert row["state"] == "unknown" and row["retryable"], row
    assert "looked up before any resend" in row["last_error"]
    assert len(fake.messages) == 1

    r = await client.post(f"/api/v1/deliveries/{row['id']}/retry", headers=owner.headers)
    assert r.status_code == 200, r.text
    await deliver(sessionmaker, settings, sms)
    [row] = await deliveries(client, owner, form_id)
    assert row["state"] == "delivered" and row["attempts"] == 2
    assert row["external_ref"] == fake.messages[0]["sid"]
    assert len(fake.messages) == 1 and len(fake.creates()) == 1
    assert fake.messages[0]["body"] == "Thanks Ada for answering Harvest survey."


async def test_through_the_broker_a_timeout_is_reconciled_and_every_response_texted_once(
        client, owner, sessionmaker, pipeline_settings, processes, fake):
    """The relay and an SMS worker as real processes on RabbitMQ; Twilio accepts one message late."""
    form_id, name_id, phone_id = await open_form(client, owner)
    await connect_sms(client, owner, form_id, name_id, phone_id)
    env = pipeline_env(pipeline_settings, TWILIO_API_URL=fake.url, TWILIO_ACCOUNT_SID=fake.account_sid,
                       TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_TIMEOUT_SECONDS="1")
    fake.hang_next(5)
    processes.relay(env)
    processes.workers(env, "sms")
    people = [(f"Person {i}", f"+1415555{i:04d}") for i in range(400, 404)]
    for name, phone in people:
        r = await client.post(f"/api/v1/forms/{form_id}/responses",
                              json={"answers": {name_id: name, phone_id: phone}})
        assert r.status_code == 201, r.text

    async def settled() -> list[dict] | None:
        rows = await deliveries(client, owner, form_id)
        return rows if len(rows) == len(people) and all(d["state"] in ("delivered", "unknown") for d in rows) else None

    rows = await wait_until(settled, timeout=30, what="every delivery to be delivered or unknown")
    [unknown] = [d for d in rows if d["state"] == "unknown"]
    assert len(fake.messages) == len(people)  # the late one was stored by Twilio all the same

    r = await client.post(f"/api/v1/deliveries/{unknown['id']}/retry", headers=owner.headers)
    assert r.status_code == 200, r.text

    async def all_delivered() -> list[dict] | None:
        rows = await deliveries(client, owner, form_id)
        return rows if {d["state"] for d in rows} == {"delivered"} else None

    rows = await wait_until(all_delivered, timeout=30, what="the unknown delivery to be reconciled")
    assert len(fake.messages) == len(people) and len(fake.creates()) == len(people)
    assert sorted((m["to"], m["body"]) for m in fake.messages) == sorted(
        (phone, f"Thanks {name} for answering Harvest survey.") for name, phone in people)
    assert {d["external_ref"] for d in rows} == {m["sid"] for m in fake.messages}
