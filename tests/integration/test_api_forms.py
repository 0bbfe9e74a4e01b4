"""Forms and questions through the JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import func, select, update

from webapp.forms.models import Form, Question

ALL_KINDS = [
    {"text": "Name", "kind": "short_text", "mandatory": True, "constraints": {"max_length": 50}},
    {"text": "About you", "kind": "long_text"},
    {"text": "Age", "kind": "number", "constraints": {"min": 0, "max": 130, "integer_only": True}},
    {"text": "Email", "kind": "email"},
    {"text": "Phone", "kind": "phone"},
    {"text": "Website", "kind": "url"},
    {"text": "Colour", "kind": "single_choice", "options": ["Red", "Green"]},
    {
        "text": "Hobbies",
        "kind": "multiple_choice",
        "options": ["Chess", "Golf", "Judo"],
        "constraints": {"max_selections": 2},
    },
    {"text": "Country", "kind": "dropdown", "options": ["FR", "DE"]},
    {"text": "Birthday", "kind": "date", "constraints": {"max_date": "2020-01-01"}},
    {"text": "Rate us", "kind": "rating", "constraints": {"scale": 10}},
    {"text": "Subscribe?", "kind": "yes_no"},
]


async def test_create_form_with_every_kind_starts_as_draft(client, owner):
    r = await client.post(
        "/api/v1/forms", json={"title": "Survey", "questions": ALL_KINDS}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "draft"
    assert [q["kind"] for q in body["questions"]] == [q["kind"] for q in ALL_KINDS]
    assert [q["position"] for q in body["questions"]] == list(range(len(ALL_KINDS)))
    assert body["questions"][10]["constraints"] == {"scale": 10}
    assert len(body["slug"]) >= 10
    got = await client.get(f"/api/v1/forms/{body['id']}", headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["questions"] == body["questions"]


async def test_slugs_are_unique_and_unguessable(client, owner):
    slugs = set()
    for i in range(5):
        r = await client.post("/api/v1/forms", json={"title": f"F{i}"}, headers=owner.headers)
        slugs.add(r.json()["slug"])
    assert len(slugs) == 5


async def test_title_rules(client, owner):
    for bad, fragment in [
        ({}, "title"),
        ({"title": ""}, "length"),
        ({"title": "x" * 201}, "200"),
        ({"title": 5}, "str"),
    ]:
        r = await client.post("/api/v1/forms", json=bad, headers=owner.headers)
        assert r.status_code == 400, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert fragment in r.json()["detail"]
    r = await client.post("/api/v1/forms", json={"title": "   "}, headers=owner.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "title"


async def test_unknown_fields_are_refused_with_their_name(client, owner):
    r = await client.post("/api/v1/forms", json={"title": "T", "colour": "red"}, headers=owner.headers)
    assert r.status_code == 400
    assert "colour" in r.json()["detail"]


async def test_invalid_question_config_is_reported_field_by_field_and_nothing_is_written(
    client, owner, sessionmaker
):
    r = await client.post(
        "/api/v1/forms",
        json={
            "title": "T",
            "questions": [
                {"text": "ok"},
                {"text": "Pick", "kind": "single_choice"},
                {"text": "Age", "kind": "number", "constraints": {"min": 5, "max": 1, "color": 1}},
            ],
        },
        headers=owner.headers,
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {
        "questions[1].options",
        "questions[2].constraints.min",
        "questions[2].constraints.color",
    } <= fields
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Form)) == 0
        assert await s.scalar(select(func.count()).select_from(Question)) == 0


async def test_list_search_and_pagination(client, owner, make_owner):
    other = await make_owner()
    for title in ["Customer feedback", "Event signup", "Feedback on talks"]:
        await client.post("/api/v1/forms", json={"title": title}, headers=owner.headers)
    await client.post("/api/v1/forms", json={"title": "Other feedback"}, headers=other.headers)
    r = await client.get("/api/v1/forms", params={"q": "FEEDBACK"}, headers=owner.headers)
    assert r.status_code == 200
    assert sorted(f["title"] for f in r.json()["items"]) == ["Customer feedback", "Feedback on talks"]
    page = (await client.get("/api/v1/forms", params={"limit": 2}, headers=owner.headers)).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = (await client.get("/api/v1/forms", params={"limit": 2, "offset": 2}, headers=owner.headers)).json()
    assert len(rest["items"]) == 1
    assert {f["id"] for f in page["items"]}.isdisjoint({f["id"] for f in rest["items"]})
    r = await client.get("/api/v1/forms", params={"q": "100%_"}, headers=owner.headers)
    assert r.json()["items"] == []
    r = await client.get("/api/v1/forms", params={"limit": 0}, headers=owner.headers)
    assert r.status_code == 400


async def test_update_form_and_status(client, owner):
    form = (await client.post("/api/v1/forms", json={"title": "T"}, headers=owner.headers)).json()
    r = await client.patch(
        f"/api/v1/forms/{form['id']}",
        json={
            "title": "New",
            "status": "open",
            "max_responses": 10,
            "closes_at": "2999-01-01T00:00:00Z",
            "confirmation_message": "Thanks!",
        },
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["title"], body["status"], body["max_responses"]) == ("New", "open", 10)
    assert body["version"] == form["version"]  # settings are not a structural change
    r = await client.patch(f"/api/v1/forms/{form['id']}", json={"status": "archived"}, headers=owner.headers)
    assert r.status_code == 400
    assert "status" in r.json()["detail"]


async def test_owner_isolation_returns_404(client, owner, make_owner):
    other = await make_owner()
    form = (
        await client.post(
            "/api/v1/forms", json={"title": "Mine", "questions": [{"text": "Q"}]}, headers=owner.headers
        )
    ).json()
    qid = form["questions"][0]["id"]
    for method, path, body in [
        ("GET", f"/api/v1/forms/{form['id']}", None),
        ("PATCH", f"/api/v1/forms/{form['id']}", {"title": "x"}),
        ("DELETE", f"/api/v1/forms/{form['id']}", None),
        ("GET", f"/api/v1/forms/{form['id']}/questions", None),
        ("POST", f"/api/v1/forms/{form['id']}/questions", {"text": "x"}),
        ("PATCH", f"/api/v1/forms/{form['id']}/questions/{qid}", {"text": "x"}),
        ("DELETE", f"/api/v1/forms/{form['id']}/questions/{qid}", None),
        ("GET", f"/api/v1/forms/{form['id']}/responses", None),
    ]:
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 404, (method, path, r.text)
    still = await client.get(f"/api/v1/forms/{form['id']}", headers=owner.headers)
    assert still.json()["title"] == "Mine"


async def test_auth_errors(client, owner):
    r = await client.get("/api/v1/forms")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/api/v1/forms", headers={"Authorization": "Bearer fw_nope"})
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    r = await client.get("/api/v1/forms", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]


async def test_public_definition_only_for_open_forms(client, owner):
    form = (
        await client.post(
            "/api/v1/forms", json={"title": "T", "questions": [{"text": "Q"}]}, headers=owner.headers
        )
    ).json()
    r = await client.get(f"/api/v1/forms/{form['id']}")
    assert r.status_code == 404
    await client.patch(f"/api/v1/forms/{form['id']}", json={"status": "open"}, headers=owner.headers)
    r = await client.get(f"/api/v1/forms/{form['id']}")
    assert r.status_code == 200
    body = r.json()
    assert body["questions"][0]["text"] == "Q"
    assert "email" not in body and "created_by" not in body and "owner_id" not in body


async def test_a_change_made_by_another_process_reaches_public_reads_within_seconds(client, owner, engine):
    """Public reads keep a form's stamp for a second (webapp/forms/stamps.py); a change committed
    elsewhere (here: a plain connection, as another worker process would) shows once it expires."""
    form = (await client.post("/api/v1/forms", json={"title": "T", "status": "open", "questions": [{"text": "Q"}]},
                              headers=owner.headers)).json()
    assert (await client.get(f"/api/v1/forms/{form['id']}")).status_code == 200
    assert (await client.get(f"/f/{form['slug']}")).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(update(Form).where(Form.id == uuid.UUID(form["id"]))
                           .values(status="closed", version=Form.version + 1))
    # Each read keeps its own stamp (by id, by slug), read at slightly different times: wait for both.
    deadline = time.monotonic() + 5
    while ((await client.get(f"/api/v1/forms/{form['id']}")).status_code != 404
           or "closed" not in (await client.get(f"/f/{form['slug']}")).text):
        assert time.monotonic() < deadline, "the closed form is still served publicly"
        await asyncio.sleep(0.1)


async def test_bad_ids_unknown_ids_and_bad_bodies(client, owner):
    r = await client.get("/api/v1/forms/not-a-uuid", headers=owner.headers)
    assert r.status_code == 400 and "form_id" in r.json()["detail"]
    r = await client.get(f"/api/v1/forms/{uuid.uuid4()}", headers=owner.headers)
    assert r.status_code == 404 and r.json()["detail"] == "Form not found."
    r = await client.post(
        "/api/v1/forms", content=b'{"title": ', headers={**owner.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = await client.post(
        "/api/v1/forms", content=b"title=x", headers={**owner.headers, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    r = await client.post(
        "/api/v1/forms",
        content=b'{"title": "' + b"x" * 1_100_000 + b'"}',
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_delete_form_cascades(client, owner, sessionmaker):
    form = (
        await client.post(
            "/api/v1/forms",
            json={"title": "T", "status": "open", "questions": [{"text": "Q"}]},
            headers=owner.headers,
        )
    ).json()
    qid = form["questions"][0]["id"]
    r = await client.post(f"/api/v1/forms/{form['id']}/responses", json={"answers": {qid: "hi"}})
    assert r.status_code == 201
    r = await client.delete(f"/api/v1/forms/{form['id']}", headers=owner.headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/forms/{form['id']}", headers=owner.headers)).status_code == 404
    from webapp.responses.models import Answer, Response

    async with sessionmaker() as s:
        for model in (Form, Question, Response, Answer):
            assert await s.scalar(select(func.count()).select_from(model)) == 0, model


async def test_questions_add_edit_reorder_and_version(client, owner):
    form = (
        await client.post(
            "/api/v1/forms",
            json={"title": "T", "questions": [{"text": "A"}, {"text": "B"}]},
            headers=owner.headers,
        )
    ).json()
    fid, v = form["id"], form["version"]
    r = await client.post(
        f"/api/v1/forms/{fid}/questions", json={"text": "First", "position": 0}, headers=owner.headers
    )
    assert r.status_code == 201
    texts = [
        q["text"] for q in (await client.get(f"/api/v1/forms/{fid}/questions", headers=owner.headers)).json()
    ]
    assert texts == ["First", "A", "B"]
    qs = (await client.get(f"/api/v1/forms/{fid}/questions", headers=owner.headers)).json()
    r = await client.patch(
        f"/api/v1/forms/{fid}/questions/{qs[1]['id']}",
        json={"kind": "dropdown", "options": ["x", "y"], "mandatory": True},
        headers=owner.headers,
    )
    assert r.status_code == 200 and r.json()["options"] == ["x", "y"] and r.json()["mandatory"] is True
    r = await client.patch(
        f"/api/v1/forms/{fid}/questions/{qs[1]['id']}", json={"options": []}, headers=owner.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "options"
    order = [qs[2]["id"], qs[0]["id"], qs[1]["id"]]
    r = await client.post(
        f"/api/v1/forms/{fid}/questions/reorder", json={"question_ids": order}, headers=owner.headers
    )
    assert r.status_code == 200 and [q["id"] for q in r.json()] == order
    r = await client.post(
        f"/api/v1/forms/{fid}/questions/reorder", json={"question_ids": order[:2]}, headers=owner.headers
    )
    assert r.status_code == 422 and "missing" in r.json()["detail"]
    after = (await client.get(f"/api/v1/forms/{fid}", headers=owner.headers)).json()
    assert [q["id"] for q in after["questions"]] == order
    assert after["version"] == v + 3  # add, edit, reorder; the refused changes bumped nothing


async def test_delete_question_archives_when_answered_and_purges_on_request(client, owner, sessionmaker):
    form = (
        await client.post(
            "/api/v1/forms",
            json={
                "title": "T",
                "status": "open",
                "questions": [{"text": "Kept"}, {"text": "Answered"}, {"text": "Unanswered"}],
            },
            headers=owner.headers,
        )
    ).json()
    fid = form["id"]
    kept, answered, unanswered = (q["id"] for q in form["questions"])
    resp = (
        await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {kept: "k", answered: "a"}})
    ).json()
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{answered}", headers=owner.headers)
    assert r.json()["result"] == "archived"
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{unanswered}", headers=owner.headers)
    assert r.json()["result"] == "deleted"
    public = (await client.get(f"/api/v1/forms/{fid}")).json()
    assert [q["text"] for q in public["questions"]] == ["Kept"]
    archived = (
        await client.get(
            f"/api/v1/forms/{fid}/questions", params={"include_archived": "true"}, headers=owner.headers
        )
    ).json()
    assert [(q["text"], q["archived"]) for q in archived] == [("Kept", False), ("Answered", True)]
    got = (await client.get(f"/api/v1/forms/{fid}/responses/{resp['id']}", headers=owner.headers)).json()
    assert {a["text"] for a in got["answers"]} == {"k", "a"}
    # An answer to an archived question is refused on new submissions.
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": {answered: "late"}})
    assert r.status_code == 422 and "removed" in r.json()["errors"][0]["message"]
    r = await client.delete(
        f"/api/v1/forms/{fid}/questions/{answered}", params={"purge": "true"}, headers=owner.headers
    )
    assert r.json()["result"] == "deleted"
    got = (await client.get(f"/api/v1/forms/{fid}/responses/{resp['id']}", headers=owner.headers)).json()
    assert [a["text"] for a in got["answers"]] == ["k"]
