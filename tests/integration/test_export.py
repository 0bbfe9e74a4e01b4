"""CSV export: what a person opening the file in a spreadsheet sees."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update
from uuid_utils.compat import uuid7

from webapp.forms.definition import questions_for
from webapp.forms.models import Form
from webapp.responses.export import stream_csv
from webapp.responses.models import Answer, Response

QUESTIONS = [
    {"text": "Name", "mandatory": True},
    {"text": "Age", "kind": "number"},
    {"text": "Hobbies", "kind": "multiple_choice", "options": ["Chess", "Golf", "Judo"]},
    {"text": "Subscribe?", "kind": "yes_no"},
    {"text": "Old question"},
]


async def _open_form(client, owner, questions=QUESTIONS, title="Customer Survey"):
    r = await client.post("/api/v1/forms", json={"title": title, "status": "open", "questions": questions},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], [q["id"] for q in r.json()["questions"]]


async def _submit(client, fid, answers):
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": answers})
    assert r.status_code == 201, r.text
    return r.json()


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


async def test_export_has_bom_header_with_archived_question_and_neutralised_formulas(client, owner):
    fid, (name, age, hobbies, sub, old) = await _open_form(client, owner)
    first = await _submit(client, fid, {name: "=HYPERLINK(\"http://evil\")", age: "-3", hobbies: ["Judo", "Chess"],
                                        sub: True, old: "kept"})
    second = await _submit(client, fid, {name: "Zoë, \"the\" admin\nsecond line", sub: "no"})
    third = await _submit(client, fid, {name: "@SUM(A1)", old: "+cmd|' /C calc'!A0"})
    # The question has answers, so removing it archives it; its answers must still be exported.
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{old}", headers=owner.headers)
    assert r.json()["result"] == "archived"

    r = await client.get(f"/api/v1/forms/{fid}/responses.csv", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="customer-survey-responses-' in disposition
    assert disposition.endswith('.csv"')
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, so Excel reads the accents right

    rows = _rows(r.content)
    assert rows[0] == ["Response ID", "Submitted at", "Updated at", "Status", "Name", "Age", "Hobbies",
                       "Subscribe?", "Old question (archived)"]
    assert len(rows) == 4
    by_id = {row[0]: row for row in rows[1:]}
    assert [row[0] for row in rows[1:]] == [first["id"], second["id"], third["id"]]  # oldest first
    assert by_id[first["id"]][3:] == ["complete", "'=HYPERLINK(\"http://evil\")", "'-3", "Chess, Judo", "Yes",
                                      "kept"]
    assert by_id[second["id"]][4:] == ["Zoë, \"the\" admin\nsecond line", "", "", "No", ""]
    assert by_id[third["id"]][4:] == ["'@SUM(A1)", "", "", "", "'+cmd|' /C calc'!A0"]
    submitted = datetime.fromisoformat(first["submitted_at"]).astimezone(UTC)
    assert by_id[first["id"]][1] == submitted.strftime("%Y-%m-%d %H:%M:%S")


async def test_question_text_starting_with_a_formula_character_is_neutralised_in_the_header(client, owner):
    fid, _ = await _open_form(client, owner, [{"text": "=1+1"}, {"text": "-dash"}, {"text": "Plain"}])
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv", headers=owner.headers)
    assert _rows(r.content) == [["Response ID", "Submitted at", "Updated at", "Status", "'=1+1", "'-dash", "Plain"]]


async def test_export_is_only_for_the_owner(client, owner, make_owner):
    fid, (name, *_) = await _open_form(client, owner)
    await _submit(client, fid, {name: "secret"})
    intruder = await make_owner()
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv", headers=intruder.headers)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert "secret" not in r.text
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv")
    assert r.status_code == 401
    r = await client.get("/api/v1/forms/not-a-uuid/responses.csv", headers=owner.headers)
    assert r.status_code in (400, 404)


async def _bulk_responses(sessionmaker, form_id, question_ids, n, *, start, tie_every=1):
    """n responses written straight to the tables; `tie_every` > 1 gives runs of equal timestamps."""
    ids = []
    responses, answers = [], []
    for i in range(n):
        rid = uuid7()
        ids.append(rid)
        at = start + timedelta(seconds=i // tie_every)
        responses.append({"id": rid, "form_id": form_id, "submitted_at": at, "updated_at": at,
                          "form_version": 1, "status": "complete"})
        answers.append({"id": uuid7(), "response_id": rid, "question_id": question_ids[0],
                        "value": f"person {i}", "text": f"person {i}"})
        if i % 3 == 0:
            answers.append({"id": uuid7(), "response_id": rid, "question_id": question_ids[1],
                            "value": i, "text": str(i)})
    async with sessionmaker() as s, s.begin():
        await s.execute(insert(Response), responses)
        await s.execute(insert(Answer), answers)
    return ids


async def test_thousands_of_responses_stream_complete_and_in_order(client, owner, sessionmaker):
    fid, qids = await _open_form(client, owner, [{"text": "Who"}, {"text": "Count", "kind": "number"}])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = await _bulk_responses(sessionmaker, uuid.UUID(fid), [uuid.UUID(q) for q in qids], 6_001, start=start)
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv", headers=owner.headers)
    assert r.status_code == 200
    rows = _rows(r.content)
    assert len(rows) == 6_002
    assert [row[0] for row in rows[1:]] == [str(i) for i in ids]
    assert rows[1] == [str(ids[0]), "2024-01-01 00:00:00", "2024-01-01 00:00:00", "complete", "person 0", "0"]
    assert rows[6_001][4:] == ["person 6000", "6000"]
    assert rows[3][4:] == ["person 2", ""]


async def test_batches_split_inside_runs_of_equal_timestamps_without_loss_or_repeat(client, owner, sessionmaker,
                                                                                     engine):
    fid, qids = await _open_form(client, owner, [{"text": "Who"}, {"text": "Count", "kind": "number"}])
    form_id = uuid.UUID(fid)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = await _bulk_responses(sessionmaker, form_id, [uuid.UUID(q) for q in qids], 50, start=start, tie_every=7)
    async with sessionmaker() as s:
        form = await s.get(Form, form_id)
        questions = await questions_for(s, form.id, form.version)
    chunks = [chunk async for chunk in stream_csv(engine, form_id, questions, batch_size=4)]
    assert len(chunks) == 1 + 13  # the header, then 50 responses in batches of 4
    rows = _rows(b"".join(chunks))
    assert [row[0] for row in rows[1:]] == [str(i) for i in sorted(ids, key=lambda i: (ids.index(i) // 7, i))]
    assert len({row[0] for row in rows[1:]}) == 50


async def test_limit_exports_only_the_oldest_responses(client, owner, sessionmaker):
    fid, qids = await _open_form(client, owner, [{"text": "Who"}, {"text": "Count", "kind": "number"}])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = await _bulk_responses(sessionmaker, uuid.UUID(fid), [uuid.UUID(q) for q in qids], 30, start=start)
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv?limit=7", headers=owner.headers)
    assert [row[0] for row in _rows(r.content)[1:]] == [str(i) for i in ids[:7]]
    r = await client.get(f"/api/v1/forms/{fid}/responses.csv?limit=0", headers=owner.headers)
    assert r.status_code == 400 and "limit" in r.text


async def test_a_client_that_stops_reading_releases_the_connections(client, owner, sessionmaker, engine):
    fid, qids = await _open_form(client, owner, [{"text": "Who"}, {"text": "Count", "kind": "number"}])
    form_id = uuid.UUID(fid)
    await _bulk_responses(sessionmaker, form_id, [uuid.UUID(q) for q in qids], 40, start=datetime(2024, 1, 1,
                                                                                                   tzinfo=UTC))
    async with sessionmaker() as s:
        form = await s.get(Form, form_id)
        questions = await questions_for(s, form.id, form.version)
    in_use = engine.pool.checkedout()
    stream = stream_csv(engine, form_id, questions, batch_size=5)
    first = [await anext(stream), await anext(stream)]  # the header and one batch, then the client leaves
    await stream.aclose()
    assert len(_rows(b"".join(first))) == 6
    assert engine.pool.checkedout() == in_use
    # The pool's connections are healthy: the next export is complete.
    rows = _rows(b"".join([chunk async for chunk in stream_csv(engine, form_id, questions, batch_size=5)]))
    assert len(rows) == 41


async def test_export_reads_the_same_from_the_answers_copy_as_from_the_answers_table(client, owner, engine):
    """PostgreSQL reads each response's copy of its answers, or the answers table for a row with no
    copy (written before the copy existed): a file mixing both must match the table alone, after
    edits, an archived question and a purged one."""
    questions = [*QUESTIONS, {"text": "Plan", "kind": "single_choice", "options": ['Yes, "really"', "No"]},
                 {"text": "Purged"}]
    fid, (name, age, hobbies, sub, old, plan, purged) = await _open_form(client, owner, questions)
    ids = []
    for i in range(12):  # repeated answers: the same cell formatted once and reused must stay right
        answers = {name: ["-minus", "Zoë, \"q\"\nline", "plain", "=1+2"][i % 4] + str(i // 4), age: i - 3,
                   plan: ['Yes, "really"', "No"][i % 2], purged: "gone" if i % 3 else "+also gone"}
        if i % 2:
            answers |= {hobbies: ["Golf", "Chess"], sub: True, old: "@old"}
        ids.append((await _submit(client, fid, answers))["id"])
    r = await client.patch(f"/api/v1/forms/{fid}/responses/{ids[5]}", json={"answers": {age: None, name: "edited"}},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    assert (await client.delete(f"/api/v1/forms/{fid}/questions/{old}", headers=owner.headers)).json()[
        "result"] == "archived"
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{purged}?purge=true", headers=owner.headers)
    assert r.status_code in (200, 204), r.text

    url = f"/api/v1/forms/{fid}/responses.csv"
    from_copies = (await client.get(url, headers=owner.headers)).content
    rows = _rows(from_copies)
    assert rows[0][4:] == ["Name", "Age", "Hobbies", "Subscribe?", "Plan", "Old question (archived)"]
    by_id = {row[0]: row[4:] for row in rows[1:]}
    assert by_id[ids[0]] == ["'-minus0", "'-3", "", "", 'Yes, "really"', ""]
    assert by_id[ids[1]] == ["Zoë, \"q\"\nline0", "'-2", "Chess, Golf", "Yes", "No", "'@old"]
    assert by_id[ids[5]] == ["edited", "", "Chess, Golf", "Yes", "No", "'@old"]
    assert by_id[ids[11]] == ["'=1+22", "8", "Chess, Golf", "Yes", "No", "'@old"]

    async with engine.begin() as conn:  # half the rows lose their copy, as rows written before 0003
        await conn.execute(update(Response).where(Response.id.in_([uuid.UUID(i) for i in ids[::2]]))
                           .values(answers_json=None))
    assert (await client.get(url, headers=owner.headers)).content == from_copies
    async with engine.begin() as conn:
        await conn.execute(update(Response).values(answers_json=None))
    assert (await client.get(url, headers=owner.headers)).content == from_copies


async def test_a_form_without_questions_exports_its_responses_fixed_columns(client, owner, sessionmaker):
    fid, qids = await _open_form(client, owner, [{"text": "Only"}])
    first = await _submit(client, fid, {qids[0]: "x"})
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{qids[0]}?purge=true", headers=owner.headers)
    assert r.status_code in (200, 204), r.text
    rows = _rows((await client.get(f"/api/v1/forms/{fid}/responses.csv", headers=owner.headers)).content)
    assert rows[0] == ["Response ID", "Submitted at", "Updated at", "Status"]
    assert [row[0] for row in rows[1:]] == [first["id"]] and len(rows[1]) == 4
