"""Submissions and responses through the JSON API, with their outbox events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import func, select, text, update

from webapp.outbox.models import OutboxEvent
from webapp.responses.models import Answer, Response


async def _counts(sessionmaker) -> tuple[int, int, int]:
    async with sessionmaker() as s:
        return tuple(
            [await s.scalar(select(func.count()).select_from(m)) for m in (Response, Answer, OutboxEvent)]
        )


async def _open_form(client, owner, questions, **extra):
    r = await client.post(
        "/api/v1/forms",
        json={"title": "Survey", "status": "open", "questions": questions, **extra},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    form = r.json()
    return form["id"], [q["id"] for q in form["questions"]]


QUESTIONS = [
    {"text": "Name", "mandatory": True},
    {"text": "Age", "kind": "number", "constraints": {"min": 0, "integer_only": True}},
    {"text": "Phone", "kind": "phone"},
    {
        "text": "Hobbies",
        "kind": "multiple_choice",
        "options": ["Chess", "Golf", "Judo"],
        "constraints": {"max_selections": 2},
    },
    {"text": "Subscribe?", "kind": "yes_no", "mandatory": True},
]


async def test_submission_writes_response_answers_and_one_outbox_event(client, owner, sessionmaker):
    fid, (name, age, phone, hobbies, sub) = await _open_form(client, owner, QUESTIONS)
    r = await client.post(
        f"/api/v1/forms/{fid}/responses",
        json={
            "answers": [
                {"question_id": name, "value": "  Ada  "},
                {"question_id": age, "value": "36"},
                {"question_id": phone, "value": "(202) 555-0143"},
                {"question_id": hobbies, "value": ["Judo", "Chess"]},
                {"question_id": sub, "value": True},
            ]
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    values = {a["question_id"]: (a["value"], a["text"]) for a in body["answers"]}
    assert values == {
        name: ("Ada", "Ada"),
        age: (36, "36"),
        phone: ("+12025550143", "+12025550143"),
        hobbies: (["Chess", "Judo"], "Chess, Judo"),
        sub: (True, "Yes"),
    }
    assert await _counts(sessionmaker) == (1, 5, 1)
    async with sessionmaker() as s:
        event = await s.scalar(select(OutboxEvent))
    assert event.event_type == "response.submitted" and event.published_at is None
    payload = event.payload
    assert payload["response_id"] == body["id"] and payload["form_id"] == fid
    assert payload["form_version"] == body["form_version"] == 1
    assert payload["event_id"] == str(event.event_id)
    assert {a["question_id"]: a["value"] for a in payload["answers"]}[phone] == "+12025550143"
    assert datetime.fromisoformat(payload["submitted_at"]) == datetime.fromisoformat(body["submitted_at"])


async def test_rejected_submission_lists_every_field_and_writes_nothing(client, owner, sessionmaker):
    fid, (name, age, phone, hobbies, sub) = await _open_form(client, owner, QUESTIONS)
    r = await client.post(
        f"/api/v1/forms/{fid}/responses",
        json={
            "answers": {
                name: "   ",
                age: 3.5,
                phone: "12",
                hobbies: ["Chess", "Golf", "Judo"],
                str(uuid.uuid4()): "x",
            }
        },
    )
    assert r.status_code == 422
    errors = r.json()["errors"]
    by_q = {e["question_id"]: e["message"] for e in errors}
    assert set(by_q) >= {name, age, phone, hobbies, sub}
    assert "required" in by_q[name] and "required" in by_q[sub]
    assert "whole number" in by_q[age]
    assert "at most 2" in by_q[hobbies]
    assert len(errors) == 6
    assert await _counts(sessionmaker) == (0, 0, 0)


async def test_duplicate_answers_and_other_forms_questions_are_rejected(client, owner, sessionmaker):
    fid, (name, *_rest) = await _open_form(client, owner, QUESTIONS[:1])
    other_fid, (other_q,) = await _open_form(client, owner, [{"text": "Elsewhere"}])
    r = await client.post(
        f"/api/v1/forms/{fid}/responses",
        json={"answers": [{"question_id": name, "value": "a"}, {"question_id": name.upper(), "value": "b"}]},
    )
    assert r.status_code == 422 and "more than once" in r.json()["errors"][0]["message"]
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "a", other_q: "b"}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["question_id"] == other_q
    assert await _counts(sessionmaker) == (0, 0, 0)


async def test_bad_submission_bodies(client, owner):
    fid, _ = await _open_form(client, owner, QUESTIONS[:1])
    for body in [{}, {"answers": 5}, {"answers": [{"value": 1}]}, {"answers": {}, "extra": 1}]:
        r = await client.post(f"/api/v1/forms/{fid}/responses", json=body)
        assert r.status_code == 400, (body, r.text)
    r = await client.post(
        f"/api/v1/forms/{fid}/responses",
        content=b"answers",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    r = await client.post(f"/api/v1/forms/{uuid.uuid4()}/responses", json={"answers": {}})
    assert r.status_code == 404
    r = await client.post("/api/v1/forms/123/responses", json={"answers": {}})
    assert r.status_code == 400


async def test_draft_closed_expired_and_full_forms_refuse_submissions(client, owner, sessionmaker):
    r = await client.post(
        "/api/v1/forms", json={"title": "D", "questions": [{"text": "Q"}]}, headers=owner.headers
    )
    draft = r.json()["id"]
    r = await client.post(f"/api/v1/forms/{draft}/responses", json={"answers": {}})
    assert r.status_code == 409 and "not published" in r.json()["detail"]
    await client.patch(f"/api/v1/forms/{draft}", json={"status": "closed"}, headers=owner.headers)
    r = await client.post(f"/api/v1/forms/{draft}/responses", json={"answers": {}})
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired, _ = await _open_form(client, owner, [{"text": "Q"}], closes_at=past)
    r = await client.post(f"/api/v1/forms/{expired}/responses", json={"answers": {}})
    assert r.status_code == 410
    full, (q,) = await _open_form(client, owner, [{"text": "Q"}], max_responses=2)
    for i in range(2):
        assert (
            await client.post(f"/api/v1/forms/{full}/responses", json={"answers": {q: str(i)}})
        ).status_code == 201
    r = await client.post(f"/api/v1/forms/{full}/responses", json={"answers": {q: "3"}})
    assert r.status_code == 409 and "limit of 2" in r.json()["detail"]
    assert (await _counts(sessionmaker))[0] == 2


async def test_response_limit_holds_under_concurrency(client, owner, sessionmaker):
    fid, (q,) = await _open_form(client, owner, [{"text": "Q"}], max_responses=5)
    results = await asyncio.gather(
        *[client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {q: str(i)}}) for i in range(12)]
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5 and codes.count(409) == 7, codes
    assert await _counts(sessionmaker) == (5, 5, 5)


async def test_keyset_pagination_newest_first(client, owner):
    fid, (q,) = await _open_form(client, owner, [{"text": "Q"}])
    r = await client.get(f"/api/v1/forms/{fid}/responses", headers=owner.headers)
    assert r.json() == {"items": [], "next_cursor": None, "limit": 50}
    ids = []
    for i in range(7):
        ids.append(
            (await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {q: f"a{i}"}})).json()["id"]
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(f"/api/v1/forms/{fid}/responses", params=params, headers=owner.headers)
        ).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    # A page that ends exactly at the last response says there is nothing more.
    page = (await client.get(f"/api/v1/forms/{fid}/responses", params={"limit": 7}, headers=owner.headers)).json()
    assert [r["id"] for r in page["items"]] == list(reversed(ids)) and page["next_cursor"] is None
    r = await client.get(
        f"/api/v1/forms/{fid}/responses", params={"cursor": "garbage!"}, headers=owner.headers
    )
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    r = await client.get(f"/api/v1/forms/{fid}/responses", params={"limit": 1000}, headers=owner.headers)
    assert r.status_code == 400


async def test_update_response_revalidates_and_emits_event(client, owner, sessionmaker):
    fid, (name, age, phone, hobbies, sub) = await _open_form(client, owner, QUESTIONS)
    rid = (
        await client.post(
            f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada", age: 36, sub: "no"}}
        )
    ).json()["id"]
    url = f"/api/v1/forms/{fid}/responses/{rid}"
    r = await client.patch(url, json={"answers": {age: -1, name: ""}}, headers=owner.headers)
    assert r.status_code == 422 and len(r.json()["errors"]) == 2
    r = await client.patch(url, json={"answers": {age: 37, hobbies: ["Golf"]}}, headers=owner.headers)
    assert r.status_code == 200, r.text
    got = (await client.get(url, headers=owner.headers)).json()
    assert {a["question_id"]: a["value"] for a in got["answers"]} == {
        name: "Ada",
        age: 37,
        hobbies: ["Golf"],
        sub: False,
    }
    assert got["updated_at"] > got["submitted_at"]
    r = await client.patch(url, json={"answers": {age: None}}, headers=owner.headers)
    assert r.status_code == 200 and age not in {a["question_id"] for a in r.json()["answers"]}
    async with sessionmaker() as s:
        types = list(await s.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.id)))
    assert types == ["response.submitted", "response.updated", "response.updated"]


async def test_delete_response_emits_event_and_isolation(client, owner, make_owner, sessionmaker):
    other = await make_owner()
    fid, (name, *_r) = await _open_form(client, owner, QUESTIONS[:1])
    rid = (await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada"}})).json()["id"]
    url = f"/api/v1/forms/{fid}/responses/{rid}"
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method, url, json={"answers": {}} if method == "PATCH" else None, headers=other.headers
        )
        assert r.status_code == 404, method
    r = await client.delete(url, headers=owner.headers)
    assert r.status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    async with sessionmaker() as s:
        events = list(await s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
    assert [e.event_type for e in events] == ["response.submitted", "response.deleted"]
    assert events[1].payload["response_id"] == rid
    assert await _counts(sessionmaker) == (0, 0, 2)


async def test_nul_characters_never_reach_the_database(client, owner, sessionmaker):
    fid, (name, *_r) = await _open_form(client, owner, QUESTIONS[:1])
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "a\u0000b"}})
    assert r.status_code == 422 and "NUL" in r.json()["errors"][0]["message"]
    r = await client.post("/api/v1/forms", json={"title": "x\u0000"}, headers=owner.headers)
    assert r.status_code == 422
    assert await _counts(sessionmaker) == (0, 0, 0)


async def test_repeat_submissions_follow_every_change_to_the_form(client, owner, sessionmaker):
    """After a first submission, later ones take the one-statement path on PostgreSQL; it must see
    closing, reopening, new mandatory questions and response limits at once."""
    fid, (name, *_r) = await _open_form(client, owner, QUESTIONS[:1])
    for i in range(3):
        r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: f"n{i}"}})
        assert r.status_code == 201
    await client.patch(f"/api/v1/forms/{fid}", json={"status": "closed"}, headers=owner.headers)
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "late"}})
    assert r.status_code == 409
    await client.patch(f"/api/v1/forms/{fid}", json={"status": "open"}, headers=owner.headers)
    new_q = (await client.post(f"/api/v1/forms/{fid}/questions", json={"text": "Email", "kind": "email",
                                                                     "mandatory": True},
                               headers=owner.headers)).json()["id"]
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "x"}})
    assert r.status_code == 422 and r.json()["errors"][0]["question_id"] == new_q
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "x", new_q: "a@b.co"}})
    assert r.status_code == 201 and r.json()["form_version"] == 2
    await client.patch(f"/api/v1/forms/{fid}", json={"max_responses": 5}, headers=owner.headers)
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "y", new_q: "a@b.co"}})
    assert r.status_code == 201
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "z", new_q: "a@b.co"}})
    assert r.status_code == 409 and "limit of 5" in r.json()["detail"]
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await client.patch(f"/api/v1/forms/{fid}", json={"max_responses": None, "closes_at": past}, headers=owner.headers)
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "z", new_q: "a@b.co"}})
    assert r.status_code == 410
    assert await _counts(sessionmaker) == (5, 7, 5)
    async with sessionmaker() as s:
        versions = list(await s.scalars(select(OutboxEvent.payload["form_version"].as_integer()).order_by(OutboxEvent.id)))
    assert versions == [1, 1, 1, 2, 2]


async def test_listed_responses_are_exactly_what_reading_one_gives(client, owner, sessionmaker):
    """The list is written by the database on PostgreSQL and by Python elsewhere; reading one
    response always goes through Python. Same values, same answer order, same timestamp text."""
    fid, (name, age, phone, hobbies, sub) = await _open_form(client, owner, QUESTIONS)
    answers = [{name: 'Ada "the first" \\ Lovelace ✓', age: 36, phone: "(202) 555-0143", hobbies: ["Judo", "Chess"],
                sub: True}, {name: "Grace", sub: False}, {name: "=1+2", age: "0", sub: "no"}]
    for given in answers:
        r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": given})
        assert r.status_code == 201, r.text

    async def same_as_single_reads(expected: int) -> list[dict]:
        page = (await client.get(f"/api/v1/forms/{fid}/responses?limit=2", headers=owner.headers)).json()
        rest = (await client.get(f"/api/v1/forms/{fid}/responses?limit=2&cursor={page['next_cursor']}",
                                 headers=owner.headers)).json()
        assert page["limit"] == 2 and rest["next_cursor"] is None
        listed = page["items"] + rest["items"]
        assert len(listed) == expected
        for item in listed:
            one = await client.get(f"/api/v1/forms/{fid}/responses/{item['id']}", headers=owner.headers)
            assert item == one.json()
        return listed

    await same_as_single_reads(3)
    # New question order, and an answered question archived: its answers stay, listed last.
    r = await client.post(f"/api/v1/forms/{fid}/questions/reorder", headers=owner.headers,
                          json={"question_ids": [sub, hobbies, phone, age, name]})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{hobbies}", headers=owner.headers)
    assert r.json()["result"] == "archived"
    async with sessionmaker() as s, s.begin():  # a timestamp with no microseconds is written without them
        await s.execute(update(Response).values(submitted_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC)).where(
            Response.id == (await s.scalars(select(Response.id).limit(1))).one()))
    listed = await same_as_single_reads(3)
    first = next(i for i in listed if i["answers"][0]["question_id"] == sub and len(i["answers"]) == 5)
    assert [a["question_id"] for a in first["answers"]] == [sub, phone, age, name, hobbies]
    assert [a["value"] for a in first["answers"]] == [True, "+12025550143", 36, 'Ada "the first" \\ Lovelace ✓',
                                                     ["Chess", "Judo"]]
    assert "2026-05-01T12:00:00Z" in [i["submitted_at"] for i in listed]
    # Responses written or edited under the new order list the same way as those written before it.
    new = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Kat", phone: "202 555 0101", sub: "yes"}})
    assert new.status_code == 201, new.text
    r = await client.patch(f"/api/v1/forms/{fid}/responses/{first['id']}", headers=owner.headers,
                           json={"answers": {age: 37}})
    assert r.status_code == 200, r.text
    listed = await same_as_single_reads(4)
    edited = next(i for i in listed if i["id"] == first["id"])
    assert [a["question_id"] for a in edited["answers"]] == [sub, phone, age, name, hobbies]
    assert [a["value"] for a in edited["answers"]][2] == 37
    # The copy kept on each row holds what the API shows; rows written or edited since the reorder
    # hold it in the new order too (the older ones are listed from the answers table).
    async with sessionmaker() as s:
        stored = dict((await s.execute(select(Response.id, Response.answers_json))).tuples().all())
    fresh = {new.json()["id"], first["id"]}
    for item in listed:
        copy = msgspec.json.decode(stored[uuid.UUID(item["id"])])
        if item["id"] in fresh:
            assert copy == item["answers"]
        else:
            assert sorted(copy, key=lambda a: a["question_id"]) == sorted(item["answers"], key=lambda a: a["question_id"])


@pytest.mark.postgres_only
async def test_a_commit_that_fails_is_answered_503_not_success(client, owner, sessionmaker):
    """The database refuses the transaction only at COMMIT (a deferred constraint trigger): the
    respondent must not read success for an answer that was never stored."""
    fid, (name, *_rest, sub) = await _open_form(client, owner, QUESTIONS)
    refuse = """
        CREATE FUNCTION test_refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM answers WHERE response_id = NEW.id AND text = 'boom') THEN
            RAISE EXCEPTION 'refused at commit';
          END IF;
          RETURN NULL;
        END $$"""
    trigger = ("CREATE CONSTRAINT TRIGGER test_refuse_boom AFTER INSERT ON responses "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_boom()")
    async with sessionmaker() as s, s.begin():
        await s.execute(text(refuse))
        await s.execute(text(trigger))
    try:
        before = await _counts(sessionmaker)
        # A new form's first submission in a process takes the ORM path, committed as the response starts.
        r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "boom", sub: "yes"}})
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json" and r.headers["retry-after"] == "1"
        assert r.json()["detail"] == "Your change could not be saved; nothing was stored. Please retry."
        assert "x-request-id" in r.headers
        assert await _counts(sessionmaker) == before
        r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "Ada", sub: "yes"}})
        assert r.status_code == 201, r.text
        assert await _counts(sessionmaker) == (before[0] + 1, before[1] + 2, before[2] + 1)
        # A browser is told on a page.
        fid, (name, *_rest, sub) = await _open_form(client, owner, QUESTIONS)
        r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {name: "boom", sub: "no"}},
                              headers={"Accept": "text/html,*/*"})
        assert r.status_code == 503 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert "<h1>Not saved</h1>" in r.text and "nothing was stored" in r.text
        assert await _counts(sessionmaker) == (before[0] + 1, before[1] + 2, before[2] + 1)
    finally:
        async with sessionmaker() as s, s.begin():
            await s.execute(text("DROP TRIGGER test_refuse_boom ON responses"))
            await s.execute(text("DROP FUNCTION test_refuse_boom()"))
