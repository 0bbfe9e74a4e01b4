"""Owners connect integrations to a form through /api/v1/forms/{id}/integrations.

A small "probe" integration is installed into the plugin registry for these tests: it implements
the real protocol (msgspec config, form-aware checks, a required question, a test message whose
outcome the config chooses), so every rule of the service is exercised without depending on how a
particular built-in integration words its errors. Built-in kinds are tested in their own files.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

import msgspec
import pytest
from sqlalchemy import func, select

from webapp.deliveries.models import FormIntegration
from webapp.forms.models import Form, QuestionKind
from webapp.plugins import FieldError, FormContext, Outcome, Result, Work, load_integrations


class ProbeConfig(msgspec.Struct, forbid_unknown_fields=True):
    phone_question_id: Annotated[UUID, msgspec.Meta(description="The question that holds the phone number")]
    greeting: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] = "Hello"
    api_token: str = ""
    outcome: str = "delivered"  # what send_test and handle answer: delivered | failed | unknown | raise


class Probe:
    kind = "probe"
    title = "Probe"
    config_schema = ProbeConfig
    batch_size = 1

    def validate_config(self, config: ProbeConfig, form: FormContext) -> list[FieldError]:
        q = next((q for q in form.questions if q.id == config.phone_question_id), None)
        if q is None:
            return [FieldError("phone_question_id", "Choose a question of this form.")]
        if q.kind != QuestionKind.PHONE:
            return [FieldError("phone_question_id", "Choose a phone question.")]
        if q.archived:
            return [FieldError("phone_question_id", "This question has been removed from the form.")]
        return []

    def required_questions(self, config: ProbeConfig) -> Sequence[UUID]:
        return [config.phone_question_id]

    def __init__(self) -> None:
        self.handled: list[Work] = []

    async def handle(self, batch: Sequence[Work]) -> list[Result]:
        self.handled.extend(batch)
        outcomes = {"failed": Result(Outcome.FAILED, "The probe refused it (HTTP 422)."),
                    "unknown": Result(Outcome.UNKNOWN, "The probe timed out after sending.", external_ref="probe-9")}
        return [outcomes.get(w.config.outcome, Result(Outcome.DELIVERED)) for w in batch]

    async def send_test(self, config: ProbeConfig, form: FormContext) -> Result:
        if config.outcome == "raise":
            raise ConnectionError("probe endpoint refused the connection")
        if config.outcome == "failed":
            return Result(Outcome.FAILED, "The probe said no (HTTP 403).")
        return Result(Outcome.DELIVERED, f"{config.greeting}, {form.title}", external_ref="probe-1")


@pytest.fixture
def probe(monkeypatch) -> Probe:
    integration = Probe()
    monkeypatch.setitem(load_integrations().integrations, "probe", integration)
    return integration


QUESTIONS = [
    {"text": "Name"},
    {"text": "Mobile", "kind": "phone"},
    {"text": "Email", "kind": "email"},
]


async def open_form(client, owner, questions=QUESTIONS, title="Survey") -> tuple[str, list[str]]:
    r = await client.post("/api/v1/forms", json={"title": title, "status": "open", "questions": questions},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], [q["id"] for q in r.json()["questions"]]


async def connect(client, owner, fid, config, **extra) -> dict[str, Any]:
    r = await client.post(f"/api/v1/forms/{fid}/integrations",
                          json={"kind": "probe", "config": config, **extra}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _rows(sessionmaker) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(FormIntegration))


async def _version(sessionmaker, fid) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(Form.version).where(Form.id == uuid.UUID(fid)))


async def test_installed_kinds_come_with_their_config_schema(client, owner, probe):
    r = await client.get("/api/v1/integrations", headers=owner.headers)
    assert r.status_code == 200
    kinds = {k["kind"]: k for k in r.json()}
    assert kinds["probe"]["title"] == "Probe"
    schema = kinds["probe"]["config_schema"]
    props = schema["$defs"]["ProbeConfig"]["properties"]
    assert props["phone_question_id"]["format"] == "uuid"
    assert props["phone_question_id"]["description"] == "The question that holds the phone number"
    assert schema["$defs"]["ProbeConfig"]["required"] == ["phone_question_id"]
    assert (await client.get("/api/v1/integrations")).status_code == 401


async def test_connect_list_change_and_disconnect(client, owner, probe, sessionmaker):
    fid, (_name, phone, _email) = await open_form(client, owner)
    created = await connect(client, owner, fid, {"phone_question_id": phone, "api_token": "tok_0123456789abcdefXYZ1"})
    # The create answer is the one place a secret is shown in full; defaults are filled in and stored.
    assert created["config"] == {"phone_question_id": phone, "greeting": "Hello",
                                 "api_token": "tok_0123456789abcdefXYZ1", "outcome": "delivered"}
    assert created["name"] == "Probe" and created["enabled"] is True and created["installed"] is True
    iid = created["id"]

    r = await client.get(f"/api/v1/forms/{fid}/integrations", headers=owner.headers)
    assert r.status_code == 200
    [listed] = r.json()
    assert listed["id"] == iid and listed["delivery_counts"] == {}
    assert listed["config"]["api_token"] == "••••••XYZ1"
    assert "0123456789" not in r.text

    r = await client.patch(f"/api/v1/forms/{fid}/integrations/{iid}",
                           json={"name": "  Text the customer ", "enabled": False,
                                 "config": {"greeting": "Hi", "api_token": "••••••XYZ1"}},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Text the customer" and body["enabled"] is False
    assert body["config"]["greeting"] == "Hi" and body["config"]["phone_question_id"] == phone
    async with sessionmaker() as s:
        stored = await s.scalar(select(FormIntegration).where(FormIntegration.id == uuid.UUID(iid)))
    assert stored.config["api_token"] == "tok_0123456789abcdefXYZ1"  # the masked value did not overwrite it

    r = await client.patch(f"/api/v1/forms/{fid}/integrations/{iid}", json={"config": {"api_token": "new-token"}},
                           headers=owner.headers)
    assert r.status_code == 200
    async with sessionmaker() as s:
        stored = await s.scalar(select(FormIntegration).where(FormIntegration.id == uuid.UUID(iid)))
    assert stored.config["api_token"] == "new-token"

    r = await client.get(f"/api/v1/forms/{fid}/integrations/{iid}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["config"]["api_token"] == "••••••"
    r = await client.delete(f"/api/v1/forms/{fid}/integrations/{iid}", headers=owner.headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/forms/{fid}/integrations/{iid}", headers=owner.headers)).status_code == 404
    assert await _rows(sessionmaker) == 0


async def test_config_errors_are_reported_field_by_field_and_nothing_is_saved(client, owner, probe, sessionmaker):
    fid, (name, phone, email) = await open_form(client, owner)
    _other_fid, (other_q, *_) = await open_form(client, owner, [{"text": "Cell", "kind": "phone"}])
    url = f"/api/v1/forms/{fid}/integrations"
    cases = [
        ({}, "config.phone_question_id", "This field is required."),
        ({"phone_question_id": "not-a-uuid"}, "config.phone_question_id", "Invalid UUID"),
        ({"phone_question_id": phone, "greeting": ""}, "config.greeting", "length >= 1"),
        ({"phone_question_id": phone, "greeting": 5}, "config.greeting", "Expected `str`"),
        ({"phone_question_id": phone, "colour": "red"}, "config.colour", "unknown field"),
        ({"phone_question_id": email}, "config.phone_question_id", "Choose a phone question."),
        ({"phone_question_id": other_q}, "config.phone_question_id", "Choose a question of this form."),
    ]
    for config, field, message in cases:
        r = await client.post(url, json={"kind": "probe", "config": config}, headers=owner.headers)
        assert r.status_code == 422, (config, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        [error] = r.json()["errors"]
        assert error["field"] == field, (config, error)
        assert message in error["message"], (config, error)
        assert message in r.json()["detail"]
    assert await _rows(sessionmaker) == 0

    created = await connect(client, owner, fid, {"phone_question_id": phone})
    r = await client.patch(f"{url}/{created['id']}", json={"config": {"phone_question_id": name}},
                           headers=owner.headers)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "config.phone_question_id", "message": "Choose a phone question."}]
    r = await client.get(f"{url}/{created['id']}", headers=owner.headers)
    assert r.json()["config"]["phone_question_id"] == phone  # unchanged


async def test_unknown_kind_names_and_bad_bodies(client, owner, probe, sessionmaker):
    fid, (_, phone, _) = await open_form(client, owner)
    url = f"/api/v1/forms/{fid}/integrations"
    r = await client.post(url, json={"kind": "fax", "config": {}}, headers=owner.headers)
    assert r.status_code == 422
    assert "Unknown integration kind 'fax'" in r.json()["detail"] and "probe" in r.json()["detail"]
    assert r.json()["errors"][0]["field"] == "kind"
    r = await client.post(url, json={"kind": "probe", "name": "   ", "config": {"phone_question_id": phone}},
                          headers=owner.headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "name", "message": "Enter a name."}]
    r = await client.post(url, json={"kind": "probe", "name": "x" * 201, "config": {"phone_question_id": phone}},
                          headers=owner.headers)
    assert r.status_code == 400 and "name" in r.json()["detail"]
    for body in [{"config": {}}, {"kind": "probe", "config": []}, {"kind": "probe", "extra": 1}]:
        r = await client.post(url, json=body, headers=owner.headers)
        assert r.status_code == 400, (body, r.text)
    assert await _rows(sessionmaker) == 0
    created = await connect(client, owner, fid, {"phone_question_id": phone}, name="Mine", enabled=False)
    assert created["name"] == "Mine" and created["enabled"] is False
    r = await client.patch(f"{url}/{created['id']}", json={"kind": "other"}, headers=owner.headers)
    assert r.status_code == 400 and "kind" in r.json()["detail"]
    for bad in ["123", str(uuid.uuid4())]:
        r = await client.get(f"{url}/{bad}", headers=owner.headers)
        assert r.status_code == (400 if bad == "123" else 404)


async def test_other_owners_see_nothing(client, owner, make_owner, probe, sessionmaker):
    fid, (_, phone, _) = await open_form(client, owner)
    iid = (await connect(client, owner, fid, {"phone_question_id": phone}))["id"]
    intruder = await make_owner()
    own_fid, _ = await open_form(client, intruder)
    base = f"/api/v1/forms/{fid}/integrations"
    calls = [
        ("GET", base, None), ("POST", base, {"kind": "probe", "config": {"phone_question_id": phone}}),
        ("GET", f"{base}/{iid}", None), ("PATCH", f"{base}/{iid}", {"enabled": False}),
        ("DELETE", f"{base}/{iid}", None), ("POST", f"{base}/{iid}/test", None),
        # Their own form id with my integration id: still not found.
        ("GET", f"/api/v1/forms/{own_fid}/integrations/{iid}", None),
        ("DELETE", f"/api/v1/forms/{own_fid}/integrations/{iid}", None),
    ]
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=intruder.headers)
        assert r.status_code == 404, (method, url, r.text)
    r = await client.get(f"{base}/{iid}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert await _rows(sessionmaker) == 1


async def test_send_test_reports_the_outcome_in_the_body(client, owner, probe, sessionmaker):
    fid, (_, phone, _) = await open_form(client, owner, title="Checkup")
    iid = (await connect(client, owner, fid, {"phone_question_id": phone, "greeting": "Ahoy"}))["id"]
    url = f"/api/v1/forms/{fid}/integrations/{iid}"
    r = await client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 200
    assert r.json() == {"outcome": "delivered", "detail": "Ahoy, Checkup", "external_ref": "probe-1"}

    await client.patch(url, json={"config": {"outcome": "failed"}}, headers=owner.headers)
    r = await client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["outcome"] == "failed" and r.json()["detail"] == "The probe said no (HTTP 403)."

    await client.patch(url, json={"config": {"outcome": "raise"}}, headers=owner.headers)
    r = await client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 200 and r.json()["outcome"] == "failed"
    assert "ConnectionError" in r.json()["detail"] and "refused" in r.json()["detail"]

    # The stored config no longer fits the form (its phone question became a text question): 422, not a send.
    await client.patch(f"/api/v1/forms/{fid}/questions/{phone}", json={"kind": "short_text"}, headers=owner.headers)
    r = await client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "config.phone_question_id", "message": "Choose a phone question."}]


async def test_a_kind_that_is_no_longer_installed(client, owner, probe, sessionmaker, monkeypatch):
    fid, (_, phone, _) = await open_form(client, owner)
    iid = (await connect(client, owner, fid, {"phone_question_id": phone, "api_token": "secret-value-123456"}))["id"]
    monkeypatch.delitem(load_integrations().integrations, "probe")
    url = f"/api/v1/forms/{fid}/integrations/{iid}"
    r = await client.get(url, headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["installed"] is False and r.json()["title"] is None
    assert r.json()["config"]["api_token"] == "••••••3456"  # still masked by its name
    r = await client.post(f"{url}/test", headers=owner.headers)
    assert r.status_code == 409 and "not installed" in r.json()["detail"]
    r = await client.patch(url, json={"config": {"greeting": "x"}}, headers=owner.headers)
    assert r.status_code == 409
    r = await client.patch(url, json={"enabled": False, "name": "Old"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = await client.patch(url, json={"enabled": True}, headers=owner.headers)
    assert r.status_code == 409
    assert (await client.delete(url, headers=owner.headers)).status_code == 204


async def test_an_active_integration_makes_its_phone_question_required(client, owner, probe, sessionmaker):
    fid, (name, phone, _email) = await open_form(client, owner)
    submit_url = f"/api/v1/forms/{fid}/responses"
    assert (await client.post(submit_url, json={"answers": {name: "Ada"}})).status_code == 201
    v1 = await _version(sessionmaker, fid)

    iid = (await connect(client, owner, fid, {"phone_question_id": phone}))["id"]
    assert await _version(sessionmaker, fid) == v1 + 1  # the required questions changed
    r = await client.post(submit_url, json={"answers": {name: "Ada"}})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": f"answers.{phone}", "question_id": phone, "question": "Mobile",
                                   "message": "This question is required."}]
    r = await client.post(submit_url, json={"answers": {name: "Ada", phone: "+1 555"}})
    assert r.status_code == 422 and "phone number" in r.json()["errors"][0]["message"]
    r = await client.post(submit_url, json={"answers": {name: "Ada", phone: "(202) 555-0143"}})
    assert r.status_code == 201
    assert {a["question_id"]: a["value"] for a in r.json()["answers"]}[phone] == "+12025550143"

    # Renaming changes nothing a respondent sees: no new version.
    url = f"/api/v1/forms/{fid}/integrations/{iid}"
    await client.patch(url, json={"name": "Renamed"}, headers=owner.headers)
    assert await _version(sessionmaker, fid) == v1 + 1
    # Disabled: optional again.
    await client.patch(url, json={"enabled": False}, headers=owner.headers)
    assert await _version(sessionmaker, fid) == v1 + 2
    assert (await client.post(submit_url, json={"answers": {name: "Bo"}})).status_code == 201
    # Enabled again, then deleted.
    await client.patch(url, json={"enabled": True}, headers=owner.headers)
    assert (await client.post(submit_url, json={"answers": {name: "Cy"}})).status_code == 422
    await client.delete(url, headers=owner.headers)
    assert (await client.post(submit_url, json={"answers": {name: "Di"}})).status_code == 201


# ---- the built-in kinds, through the same API ------------------------------------------------------------

async def _errors(client, owner, fid, kind, config) -> dict[str, str]:
    r = await client.post(f"/api/v1/forms/{fid}/integrations", json={"kind": kind, "config": config},
                          headers=owner.headers)
    assert r.status_code == 422, r.text
    return {e["field"]: e["message"] for e in r.json()["errors"]}


async def test_builtin_kinds_report_config_errors_field_by_field(client, owner, sessionmaker):
    fid, (name, phone, email) = await open_form(client, owner)
    r = await client.get("/api/v1/integrations", headers=owner.headers)
    assert {"sheets", "sms", "webhook"} <= {k["kind"] for k in r.json()}

    errors = await _errors(client, owner, fid, "sms", {
        "phone_question_id": email, "template": "Hi {{answers.zzzzzzzz}}", "from_number": "0123"})
    assert set(errors) == {"config.phone_question_id", "config.template", "config.from_number"}
    assert "not a phone question" in errors["config.phone_question_id"]
    assert "zzzzzzzz" in errors["config.template"] and "E.164" in errors["config.from_number"]
    assert await _errors(client, owner, fid, "sms", {"phone_question_id": phone}) == {
        "config.template": "This field is required."}

    assert set(await _errors(client, owner, fid, "sheets", {"spreadsheet": "https://example.com/x/y"})) == {
        "config.spreadsheet"}
    errors = await _errors(client, owner, fid, "webhook", {"url": "ftp://example.com/hook"})
    assert list(errors) == ["config.url"] and "https://" in errors["config.url"]
    errors = await _errors(client, owner, fid, "webhook", {"url": "https://10.0.0.8/hook"})
    assert "private" in errors["config.url"]
    assert await _rows(sessionmaker) == 0

    sheet = f"https://docs.google.com/spreadsheets/d/{'a1B2' * 11}/edit#gid=0"
    r = await client.post(f"/api/v1/forms/{fid}/integrations", headers=owner.headers,
                          json={"kind": "sheets", "config": {"spreadsheet": sheet}})
    assert r.status_code == 201 and r.json()["config"]["worksheet"] == "Responses"
    r = await client.post(f"/api/v1/forms/{fid}/integrations", headers=owner.headers,
                          json={"kind": "webhook", "name": "Warehouse", "config": {"url": "https://example.com/h"}})
    assert r.status_code == 201
    secret, wid = r.json()["config"]["secret"], r.json()["id"]
    assert secret.startswith("whsec_")  # generated, and shown this once
    r = await client.get(f"/api/v1/forms/{fid}/integrations/{wid}", headers=owner.headers)
    assert r.json()["config"]["secret"] == "••••••" + secret[-4:]

    # An active SMS integration makes its phone question required; sheets and webhooks require nothing.
    submit = f"/api/v1/forms/{fid}/responses"
    assert (await client.post(submit, json={"answers": {name: "Ada"}})).status_code == 201
    r = await client.post(f"/api/v1/forms/{fid}/integrations", headers=owner.headers, json={
        "kind": "sms", "config": {"phone_question_id": phone, "template": "Thanks!", "from_number": "+14155550100"}})
    assert r.status_code == 201, r.text
    r = await client.post(submit, json={"answers": {name: "Ada"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == f"answers.{phone}"
    r = await client.post(submit, json={"answers": {name: "Ada", phone: "+44 20 7946 0958"}})
    assert r.status_code == 201
