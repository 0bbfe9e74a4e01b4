"""The reference ("seed") API compatibility layer, on SQLite and PostgreSQL.

Asserts what a client written for the reference API would notice: paths, status codes, field
names, JSON arrays, and problem-details bodies whose message names the problem.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from webapp.forms.models import Question
from webapp.outbox.models import OutboxEvent
from webapp.responses.models import Answer, Response

FORM_FIELDS = {"id", "title", "email", "created_by", "status", "createdAt", "updatedAt", "questions"}
QUESTION_FIELDS = {"id", "text", "mandatory", "kind", "options", "FormId", "createdAt", "updatedAt"}
RESPONSE_FIELDS = {"id", "FormId", "createdAt", "updatedAt", "answers"}
ANSWER_FIELDS = {"QuestionId", "text", "ResponseId"}
PROBLEM = "application/problem+json"
BAD_TOKEN = {"Authorization": "Bearer not-a-real-token"}


async def create_form(client, owner, title="Survey", **extra):
    r = await client.post("/form/create", json={"title": title, "email": "me@example.com",
                                                "created_by": "Ada", **extra}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def add_question(client, owner, form_id, text="Name", mandatory=False, **extra):
    r = await client.post(f"/form/{form_id}/create", json={"text": text, "mandatory": mandatory, **extra},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def submit(client, form_id, answers):
    return await client.post(f"/form/{form_id}", json={"answers": [
        {"QuestionId": qid, "text": value} for qid, value in answers]})


async def survey(client, owner):
    """An open form with a mandatory name, an optional age (number) and a multiple choice."""
    form = await create_form(client, owner)
    name = await add_question(client, owner, form["id"], "Name", mandatory=True)
    age = await add_question(client, owner, form["id"], "Age", kind="number")
    hobbies = await add_question(client, owner, form["id"], "Hobbies", kind="multiple_choice",
                                 options=["Chess", "Golf", "Judo"])
    return form, name, age, hobbies


async def count(sessionmaker, model):
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(model))


def assert_problem(r, status, *fragments):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    text = (body["detail"] + " " + " ".join(e.get("message", "") + " " + e.get("field", "")
                                            for e in body.get("errors", []))).lower()
    for fragment in fragments:
        assert fragment.lower() in text, (fragment, body)
    return body


# ---- forms ---------------------------------------------------------------------------------------

async def test_health(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_create_form_uses_reference_fields_and_starts_open(client, owner):
    body = await create_form(client, owner, "Customer survey")
    assert set(body) == FORM_FIELDS
    assert body["title"] == "Customer survey"
    assert body["email"] == "me@example.com"
    assert body["created_by"] == "Ada"
    assert body["status"] == "open"
    assert body["questions"] == []
    uuid.UUID(body["id"])
    assert body["createdAt"] and body["updatedAt"]
    # Open at once: anyone can read it and submit to it.
    assert (await client.get(f"/form/{body['id']}")).status_code == 200
    assert (await submit(client, body["id"], [])).status_code == 201


async def test_create_form_only_needs_a_title_and_ignores_extra_fields(client, owner):
    r = await client.post("/form/create", json={"title": "T", "id": 7, "createdAt": "yesterday",
                                                "whatever": {"x": 1}}, headers=owner.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] is None and body["created_by"] is None
    assert body["id"] != 7


async def test_list_forms_is_an_array_with_questions(client, owner, make_owner):
    r = await client.get("/form", headers=owner.headers)
    assert r.status_code == 200
    assert r.json() == []
    first = await create_form(client, owner, "First")
    await create_form(client, owner, "Second")
    q = await add_question(client, owner, first["id"], "Q1")
    other = await make_owner()
    await create_form(client, other, "Not mine")
    r = await client.get("/form", headers=owner.headers)
    forms = r.json()
    assert [f["title"] for f in forms] == ["Second", "First"]
    assert all(set(f) == FORM_FIELDS for f in forms)
    assert forms[0]["questions"] == []
    assert [x["id"] for x in forms[1]["questions"]] == [q["id"]]
    assert set(forms[1]["questions"][0]) == QUESTION_FIELDS


async def test_get_form_owner_sees_any_status_anyone_else_only_open(client, owner, make_owner):
    form = await create_form(client, owner)
    await add_question(client, owner, form["id"], "Name")
    anon = await client.get(f"/form/{form['id']}")
    assert anon.status_code == 200
    body = anon.json()
    assert set(body) == FORM_FIELDS
    assert [q["text"] for q in body["questions"]] == ["Name"]
    assert body["email"] is None and body["created_by"] is None  # contact details are the owner's

    r = await client.patch(f"/form/{form['id']}", json={"status": "closed"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert_problem(await client.get(f"/form/{form['id']}"), 404, "form not found")
    other = await make_owner()
    assert_problem(await client.get(f"/form/{form['id']}", headers=other.headers), 404)
    mine = await client.get(f"/form/{form['id']}", headers=owner.headers)
    assert mine.status_code == 200
    assert mine.json()["status"] == "closed"
    assert mine.json()["email"] == "me@example.com"


async def test_get_unknown_form_is_404(client, owner):
    assert_problem(await client.get(f"/form/{uuid.uuid4()}", headers=owner.headers), 404, "form")
    assert_problem(await client.get(f"/form/{uuid.uuid4()}"), 404, "form")


async def test_patch_form_changes_fields_and_status(client, owner):
    form = await create_form(client, owner)
    r = await client.patch(f"/form/{form['id']}", json={"title": "Renamed", "email": None, "status": "draft"},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == FORM_FIELDS
    assert (body["title"], body["email"], body["created_by"], body["status"]) == ("Renamed", None, "Ada", "draft")
    # A draft takes no submissions and is hidden from the public.
    assert_problem(await submit(client, form["id"], []), 409, "not published")
    assert_problem(await client.get(f"/form/{form['id']}"), 404)
    r = await client.patch(f"/form/{form['id']}", json={"status": "open"}, headers=owner.headers)
    assert r.json()["status"] == "open"
    assert (await submit(client, form["id"], [])).status_code == 201


async def test_patch_form_rejects_bad_values_and_changes_nothing(client, owner):
    form = await create_form(client, owner)
    for bad, fragment in [({"status": "archived"}, "status"), ({"title": None}, "title"),
                          ({"title": "x" * 201}, "title"), ({"title": 3}, "title")]:
        r = await client.patch(f"/form/{form['id']}", json=bad, headers=owner.headers)
        assert_problem(r, 400, fragment)
    assert_problem(await client.patch(f"/form/{form['id']}", json={"title": "  "}, headers=owner.headers),
                   422, "title")
    got = (await client.get(f"/form/{form['id']}", headers=owner.headers)).json()
    assert (got["title"], got["status"]) == ("Survey", "open")


async def test_delete_form_answers_a_message_and_removes_everything(client, owner, sessionmaker):
    form, name, *_ = await survey(client, owner)
    assert (await submit(client, form["id"], [(name["id"], "Ada")])).status_code == 201
    r = await client.delete(f"/form/{form['id']}", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["message"] == "Form deleted."
    assert r.json()["id"] == form["id"]
    assert_problem(await client.get(f"/form/{form['id']}", headers=owner.headers), 404)
    assert (await client.get("/form", headers=owner.headers)).json() == []
    assert (await client.get("/response", headers=owner.headers)).json() == []
    assert await count(sessionmaker, Question) == 0
    assert await count(sessionmaker, Response) == 0
    assert_problem(await client.delete(f"/form/{form['id']}", headers=owner.headers), 404)


# ---- questions -----------------------------------------------------------------------------------

async def test_add_question_uses_reference_fields(client, owner):
    form = await create_form(client, owner)
    q = await add_question(client, owner, form["id"], "Your name", mandatory=True, extra_field="ignored")
    assert set(q) == QUESTION_FIELDS
    assert (q["text"], q["mandatory"], q["kind"], q["options"], q["FormId"]) == (
        "Your name", True, "short_text", [], form["id"])
    choice = await add_question(client, owner, form["id"], "Pick", kind="single_choice", options=["A", "B"])
    assert (choice["kind"], choice["options"]) == ("single_choice", ["A", "B"])
    got = (await client.get(f"/form/{form['id']}", headers=owner.headers)).json()
    assert [x["id"] for x in got["questions"]] == [q["id"], choice["id"]]


async def test_add_question_rejects_bad_input(client, owner, make_owner):
    form = await create_form(client, owner)
    url = f"/form/{form['id']}/create"
    assert_problem(await client.post(url, json={"mandatory": True}, headers=owner.headers), 400, "text")
    assert_problem(await client.post(url, json={"text": "x" * 501}, headers=owner.headers), 400, "text")
    assert_problem(await client.post(url, json={"text": "Q", "mandatory": "yes"}, headers=owner.headers),
                   400, "mandatory")
    assert_problem(await client.post(url, json={"text": "Q", "kind": "essay"}, headers=owner.headers), 400, "kind")
    assert_problem(await client.post(url, json={"text": "Pick", "kind": "dropdown"}, headers=owner.headers),
                   422, "option")
    other = await make_owner()
    assert_problem(await client.post(url, json={"text": "Q"}, headers=other.headers), 404, "form")
    assert_problem(await client.post(url, json={"text": "Q"}), 401)
    assert (await client.get(f"/form/{form['id']}", headers=owner.headers)).json()["questions"] == []


async def test_list_questions_covers_my_active_questions_only(client, owner, make_owner):
    r = await client.get("/question", headers=owner.headers)
    assert r.status_code == 200 and r.json() == []
    form_a = await create_form(client, owner, "A")
    form_b = await create_form(client, owner, "B")
    qa = await add_question(client, owner, form_a["id"], "A1")
    qb = await add_question(client, owner, form_b["id"], "B1")
    gone = await add_question(client, owner, form_b["id"], "B2")
    assert (await client.delete(f"/question/{gone['id']}", headers=owner.headers)).status_code == 200
    other = await make_owner()
    other_form = await create_form(client, other, "Theirs")
    await add_question(client, other, other_form["id"], "T1")
    listed = (await client.get("/question", headers=owner.headers)).json()
    assert {q["id"] for q in listed} == {qa["id"], qb["id"]}
    assert all(set(q) == QUESTION_FIELDS for q in listed)


async def test_patch_question(client, owner):
    form = await create_form(client, owner)
    q = await add_question(client, owner, form["id"], "Colour")
    r = await client.patch(f"/question/{q['id']}", json={"text": "Favourite colour", "mandatory": True,
                                                         "kind": "single_choice", "options": ["Red", "Blue"],
                                                         "FormId": "ignored"},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == QUESTION_FIELDS
    assert (body["text"], body["mandatory"], body["kind"], body["options"]) == (
        "Favourite colour", True, "single_choice", ["Red", "Blue"])
    assert_problem(await client.patch(f"/question/{q['id']}", json={"text": ""}, headers=owner.headers),
                   400, "text")
    assert_problem(await client.patch(f"/question/{q['id']}", json={"options": []}, headers=owner.headers),
                   422, "option")
    got = (await client.get(f"/form/{form['id']}", headers=owner.headers)).json()["questions"][0]
    assert (got["text"], got["options"]) == ("Favourite colour", ["Red", "Blue"])


async def test_delete_question_archives_answered_ones_unless_purged(client, owner, sessionmaker):
    form, name, age, hobbies = await survey(client, owner)
    r = await client.delete(f"/question/{hobbies['id']}", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["result"] == "deleted" and "message" in r.json()
    assert_problem(await client.patch(f"/question/{hobbies['id']}", json={"text": "x"}, headers=owner.headers),
                   404, "question")
    assert (await submit(client, form["id"], [(name["id"], "Ada"), (age["id"], "36")])).status_code == 201
    r = await client.delete(f"/question/{age['id']}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["result"] == "archived"
    assert [q["id"] for q in (await client.get(f"/form/{form['id']}")).json()["questions"]] == [name["id"]]
    assert await count(sessionmaker, Answer) == 2  # the archived question's answer stays
    r = await client.delete(f"/question/{age['id']}?purge=true", headers=owner.headers)
    assert r.status_code == 200 and r.json()["result"] == "deleted"
    assert await count(sessionmaker, Answer) == 1


# ---- submissions and responses ------------------------------------------------------------------

async def test_submission_answers_201_with_the_new_response(client, owner, sessionmaker):
    form, name, age, hobbies = await survey(client, owner)
    r = await submit(client, form["id"], [(name["id"], "Ada"), (age["id"], "36"), (hobbies["id"], ["Judo", "Chess"])])
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == RESPONSE_FIELDS
    assert body["FormId"] == form["id"]
    rid = body["id"]
    uuid.UUID(rid)
    assert all(set(a) == ANSWER_FIELDS and a["ResponseId"] == rid for a in body["answers"])
    assert {a["QuestionId"]: a["text"] for a in body["answers"]} == {
        name["id"]: "Ada", age["id"]: "36", hobbies["id"]: "Chess, Judo"}

    got = await client.get(f"/response/{rid}", headers=owner.headers)
    assert got.status_code == 200
    assert got.json() == body
    listed = await client.get("/response", headers=owner.headers)
    assert listed.status_code == 200 and listed.json() == [body]
    assert await count(sessionmaker, OutboxEvent) == 1


async def test_submission_accepts_a_single_string_for_multiple_choice(client, owner):
    form, name, _, hobbies = await survey(client, owner)
    r = await submit(client, form["id"], [(name["id"], "Ada"), (hobbies["id"], "Golf")])
    assert r.status_code == 201, r.text
    assert {a["QuestionId"]: a["text"] for a in r.json()["answers"]}[hobbies["id"]] == "Golf"


async def test_rejected_submission_writes_nothing(client, owner, sessionmaker):
    form, name, age, hobbies = await survey(client, owner)
    cases = [
        ([(age["id"], "36")], 422, ["required", "answers."]),
        ([(name["id"], "Ada"), (age["id"], "old")], 422, ["number"]),
        ([(name["id"], "Ada"), (hobbies["id"], ["Surf"])], 422, ["not an option"]),
        ([(name["id"], "Ada"), (str(uuid.uuid4()), "x")], 422, ["no such question"]),
        ([(name["id"], "Ada"), (name["id"], "Bob")], 422, ["more than once"]),
        ([(name["id"], {"first": "Ada"})], 422, ["not an object"]),
    ]
    for answers, status, fragments in cases:
        assert_problem(await submit(client, form["id"], answers), status, *fragments)
    r = await client.post(f"/form/{form['id']}", json={"answers": [{"text": "Ada"}]})
    assert_problem(r, 400, "QuestionId")
    r = await client.post(f"/form/{form['id']}", json={"answers": {"x": 1}})
    assert_problem(r, 400, "answers")
    assert_problem(await client.post(f"/form/{form['id']}", json={}), 400, "answers")
    assert await count(sessionmaker, Response) == 0
    assert await count(sessionmaker, Answer) == 0
    assert await count(sessionmaker, OutboxEvent) == 0


async def test_submission_to_unknown_or_closed_form(client, owner, sessionmaker):
    assert_problem(await submit(client, str(uuid.uuid4()), []), 404, "form")
    form = await create_form(client, owner)
    await client.patch(f"/form/{form['id']}", json={"status": "closed"}, headers=owner.headers)
    assert_problem(await submit(client, form["id"], []), 409, "closed")
    assert await count(sessionmaker, Response) == 0


async def test_patch_response_replaces_answers_and_revalidates(client, owner, sessionmaker):
    form, name, age, hobbies = await survey(client, owner)
    rid = (await submit(client, form["id"], [(name["id"], "Ada"), (age["id"], "36")])).json()["id"]
    r = await client.patch(f"/response/{rid}", json={"answers": [
        {"QuestionId": age["id"], "text": "37"}, {"QuestionId": hobbies["id"], "text": ["Golf"]}]},
        headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == RESPONSE_FIELDS and body["id"] == rid
    assert {a["QuestionId"]: a["text"] for a in body["answers"]} == {
        name["id"]: "Ada", age["id"]: "37", hobbies["id"]: "Golf"}
    before = (await client.get(f"/response/{rid}", headers=owner.headers)).json()
    events = await count(sessionmaker, OutboxEvent)

    # A bad value, or clearing a mandatory answer, is refused and nothing changes.
    for answers, fragment in [([{"QuestionId": age["id"], "text": "old"}], "number"),
                              ([{"QuestionId": name["id"], "text": ""}], "required"),
                              ([{"QuestionId": age["id"], "text": "38"}, {"QuestionId": name["id"], "text": " "}],
                               "required")]:
        r = await client.patch(f"/response/{rid}", json={"answers": answers}, headers=owner.headers)
        assert_problem(r, 422, fragment)
    assert (await client.get(f"/response/{rid}", headers=owner.headers)).json() == before
    assert await count(sessionmaker, OutboxEvent) == events
    assert_problem(await client.patch(f"/response/{rid}", json={"answers": [{"text": "x"}]},
                                      headers=owner.headers), 400, "QuestionId")


async def test_delete_response(client, owner, sessionmaker):
    form, name, *_ = await survey(client, owner)
    rid = (await submit(client, form["id"], [(name["id"], "Ada")])).json()["id"]
    r = await client.delete(f"/response/{rid}", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["message"] == "Response deleted." and r.json()["id"] == rid
    assert_problem(await client.get(f"/response/{rid}", headers=owner.headers), 404, "response")
    assert (await client.get("/response", headers=owner.headers)).json() == []
    assert await count(sessionmaker, Answer) == 0
    async with sessionmaker() as s:
        types = list(await s.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.id)))
    assert types == ["response.submitted", "response.deleted"]


async def test_list_responses_only_mine_newest_first(client, owner, make_owner):
    assert (await client.get("/response", headers=owner.headers)).json() == []
    form, name, *_ = await survey(client, owner)
    first = (await submit(client, form["id"], [(name["id"], "One")])).json()["id"]
    second = (await submit(client, form["id"], [(name["id"], "Two")])).json()["id"]
    other = await make_owner()
    other_form, other_name, *_ = await survey(client, other)
    await submit(client, other_form["id"], [(other_name["id"], "Theirs")])
    listed = (await client.get("/response", headers=owner.headers)).json()
    assert [x["id"] for x in listed] == [second, first]
    assert all(set(x) == RESPONSE_FIELDS for x in listed)


# ---- access control and input errors ------------------------------------------------------------

OWNER_ENDPOINTS = [
    ("get", "/form", None),
    ("post", "/form/create", {"title": "T"}),
    ("patch", "/form/{form}", {"title": "T"}),
    ("delete", "/form/{form}", None),
    ("post", "/form/{form}/create", {"text": "Q"}),
    ("get", "/question", None),
    ("patch", "/question/{question}", {"text": "Q"}),
    ("delete", "/question/{question}", None),
    ("get", "/response", None),
    ("get", "/response/{response}", None),
    ("patch", "/response/{response}", {"answers": []}),
    ("delete", "/response/{response}", None),
]


async def _request(client, method, url, body, headers=None):
    if body is None:
        return await getattr(client, method)(url, headers=headers)
    return await client.request(method.upper(), url, json=body, headers=headers)


async def _fixture_ids(client, owner):
    form, name, *_ = await survey(client, owner)
    rid = (await submit(client, form["id"], [(name["id"], "Ada")])).json()["id"]
    return {"form": form["id"], "question": name["id"], "response": rid}


async def test_owner_endpoints_need_a_valid_token(client, owner):
    ids = await _fixture_ids(client, owner)
    for method, path, body in OWNER_ENDPOINTS:
        url = path.format(**ids)
        r = await _request(client, method, url, body)
        assert_problem(r, 401, "token")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await _request(client, method, url, body, BAD_TOKEN), 401, "unknown")
        assert_problem(await _request(client, method, url, body, {"Authorization": "Basic abc"}), 401, "bearer")
    # A public endpoint still refuses a bad token rather than ignoring it.
    assert_problem(await client.get(f"/form/{ids['form']}", headers=BAD_TOKEN), 401)
    # Nothing was changed along the way.
    got = (await client.get(f"/form/{ids['form']}", headers=owner.headers)).json()
    assert got["title"] == "Survey" and len(got["questions"]) == 3
    assert (await client.get(f"/response/{ids['response']}", headers=owner.headers)).status_code == 200


async def test_someone_elses_ids_are_404(client, owner, make_owner):
    ids = await _fixture_ids(client, owner)
    other = await make_owner()
    await create_form(client, other, "Theirs")
    for method, path, body in OWNER_ENDPOINTS:
        if "{" not in path:
            continue
        r = await _request(client, method, path.format(**ids), body, other.headers)
        what = path.split("/")[1]
        assert_problem(r, 404, f"{what} not found")
    got = (await client.get(f"/form/{ids['form']}", headers=owner.headers)).json()
    assert got["title"] == "Survey" and len(got["questions"]) == 3
    assert (await client.get(f"/response/{ids['response']}", headers=owner.headers)).status_code == 200
    assert (await client.get("/response", headers=other.headers)).json() == []
    assert (await client.get("/question", headers=other.headers)).json() == []


@pytest.mark.parametrize("method,path,body", [
    ("get", "/form/{id}", None),
    ("patch", "/form/{id}", {"title": "T"}),
    ("delete", "/form/{id}", None),
    ("post", "/form/{id}", {"answers": []}),
    ("post", "/form/{id}/create", {"text": "Q"}),
    ("patch", "/question/{id}", {"text": "Q"}),
    ("delete", "/question/{id}", None),
    ("get", "/response/{id}", None),
    ("patch", "/response/{id}", {"answers": []}),
    ("delete", "/response/{id}", None),
])
async def test_ids_that_are_not_ids_are_400(client, owner, method, path, body):
    for bad in ["42", "not-a-uuid"]:
        r = await _request(client, method, path.format(id=bad), body, owner.headers)
        assert_problem(r, 400, "uuid")


async def test_unknown_ids_are_404(client, owner):
    missing = str(uuid.uuid4())
    for method, path, body in OWNER_ENDPOINTS:
        if "{" in path:
            url = path.format(form=missing, question=missing, response=missing)
            assert_problem(await _request(client, method, url, body, owner.headers), 404, "not found")


async def test_wrong_content_type_is_415(client, owner):
    form = await create_form(client, owner)
    for url in ["/form/create", f"/form/{form['id']}/create", f"/form/{form['id']}"]:
        r = await client.post(url, content=b"title=T", headers={**owner.headers,
                                                                 "Content-Type": "application/x-www-form-urlencoded"})
        assert_problem(r, 415, "application/json")
    r = await client.patch(f"/form/{form['id']}", content=b"<title/>",
                           headers={**owner.headers, "Content-Type": "text/xml"})
    assert_problem(r, 415, "json")
    assert (await client.get("/form", headers=owner.headers)).json()[0]["questions"] == []


async def test_malformed_json_and_wrong_shapes_are_400(client, owner, sessionmaker):
    headers = {**owner.headers, "Content-Type": "application/json"}
    for raw in [b'{"title": "T"', b"not json", b'{"title": "T",}']:
        r = await client.post("/form/create", content=raw, headers=headers)
        assert_problem(r, 400, "json")
    for body, fragment in [({}, "title"), ({"title": "x" * 201}, "title"), ({"title": ""}, "title"),
                           ({"title": 12}, "title"), ({"title": "T", "email": 5}, "email"),
                           ({"title": "T", "created_by": "x" * 201}, "created_by"), ([], "object")]:
        r = await client.post("/form/create", json=body, headers=owner.headers)
        assert_problem(r, 400, fragment)
    assert await count(sessionmaker, Response) == 0
    assert (await client.get("/form", headers=owner.headers)).json() == []


async def test_title_of_200_characters_is_fine_201_is_not(client, owner):
    assert (await client.post("/form/create", json={"title": "x" * 200}, headers=owner.headers)).status_code == 201
    assert_problem(await client.post("/form/create", json={"title": "x" * 201}, headers=owner.headers), 400,
                   "title", "200")


async def test_body_over_the_size_limit_is_413(client, owner, sessionmaker):
    form, name, *_ = await survey(client, owner)
    big = "x" * 1_100_000
    r = await client.post(f"/form/{form['id']}", json={"answers": [{"QuestionId": name["id"], "text": big}]})
    assert_problem(r, 413)
    r = await client.post("/form/create", json={"title": "T", "padding": big}, headers=owner.headers)
    assert_problem(r, 413)
    assert await count(sessionmaker, Response) == 0
    assert len((await client.get("/form", headers=owner.headers)).json()) == 1


async def test_long_answer_is_refused_by_the_question_rules(client, owner, sessionmaker):
    form, name, *_ = await survey(client, owner)
    r = await submit(client, form["id"], [(name["id"], "x" * 5000)])
    assert_problem(r, 422, "at most")
    assert await count(sessionmaker, Response) == 0
