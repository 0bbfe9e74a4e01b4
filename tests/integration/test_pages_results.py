"""The results pages over HTTP: the responses table (one column per question, keyset pages of 50,
newest first), a response's detail, edit (validated again) and delete, the summary with charts,
the CSV download, CSRF, and 404 for anyone but the owner."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

from sqlalchemy import func, insert, select
from uuid_utils.compat import uuid7

from tests.integration import test_pages_accounts as account_pages
from webapp.outbox.models import OutboxEvent
from webapp.responses.models import Answer, Response

CSRF_RE, api_form, log_in, errors_in = (account_pages.CSRF_RE, account_pages.api_form, account_pages.log_in,
                                        account_pages.errors_in)

QUESTIONS = [
    {"text": "Name", "mandatory": True},
    {"text": "Hobbies", "kind": "multiple_choice", "options": ["Chess", "Golf", "Judo"]},
    {"text": "Subscribe?", "kind": "yes_no"},
    {"text": "Age", "kind": "number", "constraints": {"min": 0}},
    {"text": "Old question"},
]


async def _setup(client, owner, answers_list=()):
    """An open form with responses (oldest first), then signed in as its owner."""
    form = await api_form(client, owner, questions=QUESTIONS, status="open")
    ids = [q["id"] for q in form["questions"]]
    responses = []
    for answers in answers_list:
        r = await client.post(f"/api/v1/forms/{form['id']}/responses",
                              json={"answers": {ids[i]: v for i, v in answers.items()}})
        assert r.status_code == 201, r.text
        responses.append(r.json())
    await log_in(client, owner.email)
    return form, ids, responses


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", html)))


async def _token(client, path="/forms"):
    return CSRF_RE.search((await client.get(path)).text).group(1)


async def _events(sessionmaker) -> list[str]:
    async with sessionmaker() as s:
        return list(await s.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.created_at)))


async def test_table_has_a_column_per_question_including_archived_newest_first(client, owner):
    form, ids, responses = await _setup(client, owner, [
        {0: "Ada", 1: ["Judo", "Chess"], 2: "yes", 3: 36, 4: "kept"},
        {0: "Grace", 2: "no"},
    ])
    r = await client.delete(f"/api/v1/forms/{form['id']}/questions/{ids[4]}", headers=owner.headers)
    assert r.json()["result"] == "archived"
    r = await client.get(f"/forms/{form['id']}/responses")
    assert r.status_code == 200
    assert 'aria-current="page">Responses</a>' in r.text
    headers = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', r.text, re.S)
    assert [_text(h).strip() for h in headers] == ["Submitted", "Name", "Hobbies", "Subscribe?", "Age",
                                                   "Old question (archived)· archived", "Actions"]
    rows = re.findall(r'<tr data-response-id="([^"]+)">(.*?)</tr>', r.text, re.S)
    assert [rid for rid, _ in rows] == [responses[1]["id"], responses[0]["id"]]
    cells = [_text(c).strip() for c in re.findall(r'<div class="cell[^"]*"[^>]*>(.*?)</div>', rows[1][1], re.S)]
    assert cells == ["Ada", "Chess, Judo", "Yes", "36", "kept"]
    assert f'href="/forms/{form["id"]}/responses.csv"' in r.text
    assert "2 responses" in r.text


async def test_table_pages_50_at_a_time_with_keyset_cursors(client, owner, sessionmaker):
    form, ids, _ = await _setup(client, owner)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows, answers = [], []
    for i in range(55):
        rid = uuid7()
        rows.append({"id": rid, "form_id": uuid.UUID(form["id"]), "submitted_at": start + timedelta(minutes=i),
                     "updated_at": start + timedelta(minutes=i), "form_version": 1, "status": "complete"})
        answers.append({"id": uuid7(), "response_id": rid, "question_id": uuid.UUID(ids[0]), "value": f"person {i}",
                        "text": f"person {i}"})
    async with sessionmaker() as s, s.begin():
        await s.execute(insert(Response), rows)
        await s.execute(insert(Answer), answers)

    first = await client.get(f"/forms/{form['id']}/responses")
    names = re.findall(r'title="(person \d+)"', first.text)
    assert len(names) == 50 and names[0] == "person 54" and names[-1] == "person 5"
    older = re.search(r'href="(/forms/[^"]+/responses\?cursor=[^"]+)" rel="next"', first.text).group(1)
    second = await client.get(unescape(older))
    assert re.findall(r'title="(person \d+)"', second.text) == [f"person {i}" for i in range(4, -1, -1)]
    assert 'rel="next"' not in second.text and "← Newest" in second.text
    bad = await client.get(f"/forms/{form['id']}/responses?cursor=rubbish")
    assert bad.status_code == 400 and "cursor" in bad.text.lower()


async def test_an_empty_form_says_so_and_points_to_sharing(client, owner):
    form, _, _ = await _setup(client, owner)
    r = await client.get(f"/forms/{form['id']}/responses")
    assert "No responses yet" in r.text and "Share the form" in r.text and "Export CSV" not in r.text
    r = await client.get(f"/forms/{form['id']}/results", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/forms/{form['id']}/responses"


async def test_response_detail_shows_every_answer(client, owner):
    form, ids, (resp,) = await _setup(client, owner, [{0: "Ada", 1: ["Golf"], 2: "no", 4: "kept"}])
    await client.delete(f"/api/v1/forms/{form['id']}/questions/{ids[4]}", headers=owner.headers)
    r = await client.get(f"/forms/{form['id']}/responses/{resp['id']}")
    assert r.status_code == 200
    pairs = [(_text(dt).strip(), _text(dd).strip())
             for dt, dd in re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", r.text, re.S)]
    assert pairs == [("Name", "Ada"), ("Hobbies", "Golf"), ("Subscribe?", "No"), ("Age", "No answer"),
                     ("Old question archived", "kept")]
    assert f'href="/forms/{form["id"]}/responses/{resp["id"]}/edit"' in r.text


async def test_editing_a_response_validates_again_and_keeps_what_was_typed(client, owner, sessionmaker):
    form, ids, (resp,) = await _setup(client, owner, [{0: "Ada", 1: ["Golf", "Judo"], 2: "yes", 3: 36}])
    url = f"/forms/{form['id']}/responses/{resp['id']}/edit"
    page = await client.get(url)
    assert page.status_code == 200
    assert f'id="q-{ids[0]}" name="{ids[0]}" type="text" maxlength="1000" value="Ada"' in page.text or \
        'value="Ada"' in page.text
    assert re.search(rf'name="{ids[1]}" value="Golf" checked', page.text)
    assert re.search(rf'name="{ids[1]}" value="Chess">', page.text)
    assert re.search(rf'name="{ids[2]}" value="yes" checked', page.text)
    token = CSRF_RE.search(page.text).group(1)

    bad = await client.post(url, data={"_csrf_token": token, ids[0]: "", ids[1]: ["Chess"], ids[3]: "-4"})
    assert bad.status_code == 422
    assert errors_in(bad.text) == ["This question is required.", "Enter a number of at least 0."]
    assert '<div class="error-summary"' in bad.text and f'href="#q-{ids[0]}"' in bad.text
    assert re.search(rf'name="{ids[1]}" value="Chess" checked', bad.text) and 'value="-4"' in bad.text
    assert await _events(sessionmaker) == ["response.submitted"]

    # Chess ticked, Golf and Judo unticked, yes/no left empty: the unticked answers are cleared.
    ok = await client.post(url, data={"_csrf_token": token, ids[0]: "Ada L.", ids[1]: ["Chess"], ids[3]: "37"},
                           follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == f"/forms/{form['id']}/responses/{resp['id']}"
    r = await client.get(f"/api/v1/forms/{form['id']}/responses/{resp['id']}", headers=owner.headers)
    assert {a["question_id"]: a["value"] for a in r.json()["answers"]} == {ids[0]: "Ada L.", ids[1]: ["Chess"],
                                                                           ids[3]: 37}
    assert await _events(sessionmaker) == ["response.submitted", "response.updated"]
    detail = await client.get(ok.headers["location"])
    assert "Saved the changes to this response." in detail.text


async def test_deleting_a_response_asks_first(client, owner, sessionmaker):
    form, _ids, (keep, gone) = await _setup(client, owner, [{0: "Keep"}, {0: "Gone"}])
    url = f"/forms/{form['id']}/responses/{gone['id']}/delete"
    page = await client.get(url)
    assert page.status_code == 200 and "1 answer" in _text(page.text) and "cannot be undone" in page.text
    r = await client.post(url, data={"_csrf_token": CSRF_RE.search(page.text).group(1)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/forms/{form['id']}/responses"
    table = await client.get(r.headers["location"])
    assert "Deleted the response" in table.text and keep["id"] in table.text and gone["id"] not in table.text
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Response)) == 1
    assert await _events(sessionmaker) == ["response.submitted", "response.submitted", "response.deleted"]


async def test_summary_draws_charts_statistics_and_latest_answers(client, owner):
    form, ids, _ = await _setup(client, owner, [
        {0: "Ada", 1: ["Chess", "Judo"], 2: "yes", 3: 30},
        {0: "Grace", 1: ["Judo"], 2: "yes", 3: 40},
        {0: "Linus", 2: "no", 3: 50},
    ])
    r = await client.get(f"/forms/{form['id']}/summary")
    assert r.status_code == 200 and 'aria-current="page">Summary</a>' in r.text
    hobbies = ids[1]
    chart = re.search(rf'<figure class="chart" id="chart-{hobbies}">(.*?)</figure>', r.text, re.S).group(1)
    assert f'role="img" aria-labelledby="chart-{hobbies}-title chart-{hobbies}-desc"' in chart
    assert "Answers to “Hobbies”" in chart
    assert "the most frequent is “Judo” with 2 (100%)" in chart
    table = [tuple(_text(c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S))
             for row in re.findall(r"<tr>(.*?)</tr>", chart.split("<tbody>")[1], re.S)]
    assert table == [("Chess", "1", "50%"), ("Golf", "0", "0%"), ("Judo", "2", "100%")]
    assert "percentages can add up to more than 100%" in chart
    assert '<rect x="0" y="102" width="100.0%" height="10" rx="5" class="chart__bar"' in chart  # Judo: full
    yes_no = re.search(rf'id="chart-{ids[2]}">(.*?)</figure>', r.text, re.S).group(1)
    assert "2 · 67%" in yes_no and "1 · 33%" in yes_no
    stats = re.search(r'<dl class="stats">(.*?)</dl>', r.text, re.S).group(1)
    assert re.findall(r"<dt>(\w+)</dt><dd>([\d.]+)</dd>", stats) == [("Min", "30"), ("Mean", "40"), ("Median", "40"),
                                                                   ("Max", "50")]
    latest = re.search(r'<ul class="latest">(.*?)</ul>', r.text, re.S).group(1)
    assert re.findall(r'<span class="latest__text">(.*?)</span>', latest) == ["Linus", "Grace", "Ada"]


async def test_csv_download_from_the_results_page(client, owner):
    form, _ids, _ = await _setup(client, owner, [{0: "=cmd()", 1: ["Chess"]}])
    r = await client.get(f"/forms/{form['id']}/responses.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="survey-responses-')
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][4:] == ["Name", "Hobbies", "Subscribe?", "Age", "Old question"]
    assert rows[1][4:6] == ["'=cmd()", "Chess"]


async def test_changes_need_the_csrf_token(client, owner, sessionmaker):
    form, ids, (resp,) = await _setup(client, owner, [{0: "Ada"}])
    base = f"/forms/{form['id']}/responses/{resp['id']}"
    r = await client.post(f"{base}/edit", data={ids[0]: "Changed"})
    assert r.status_code == 403
    r = await client.post(f"{base}/delete", data={})
    assert r.status_code == 403
    assert await _events(sessionmaker) == ["response.submitted"]


async def test_another_user_gets_404_everywhere(client, owner, make_owner, sessionmaker):
    form, ids, (resp,) = await _setup(client, owner, [{0: "Secret answer"}])
    other_form = await api_form(client, owner, questions=QUESTIONS[:1], status="open")
    intruder = await make_owner()
    await log_in(client, intruder.email)
    token = await _token(client)
    fid, rid = form["id"], resp["id"]
    for path in (f"/forms/{fid}/responses", f"/forms/{fid}/responses?cursor=abc", f"/forms/{fid}/summary",
                 f"/forms/{fid}/results", f"/forms/{fid}/responses.csv", f"/forms/{fid}/responses/{rid}",
                 f"/forms/{fid}/responses/{rid}/edit", f"/forms/{fid}/responses/{rid}/delete"):
        r = await client.get(path, follow_redirects=False)
        assert r.status_code == 404, path
        assert "Secret answer" not in r.text
    for path in (f"/forms/{fid}/responses/{rid}/edit", f"/forms/{fid}/responses/{rid}/delete"):
        r = await client.post(path, data={"_csrf_token": token, ids[0]: "Mine"}, follow_redirects=False)
        assert r.status_code == 404, path
    assert await _events(sessionmaker) == ["response.submitted"]
    # The owner cannot reach a response through another of their forms' addresses either.
    await log_in(client, owner.email)
    r = await client.get(f"/forms/{other_form['id']}/responses/{rid}")
    assert r.status_code == 404
    assert (await client.get(f"/forms/{fid}/responses/not-an-id")).status_code == 404
