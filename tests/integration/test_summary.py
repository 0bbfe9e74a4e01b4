"""Per-question results: the numbers a form owner reads on the summary tab."""

from __future__ import annotations

import uuid

import pytest

from webapp.forms.models import Form
from webapp.responses.summary import summarise

QUESTIONS = [
    {"text": "Plan", "kind": "single_choice", "options": ["Free", "Pro", "Team"]},
    {"text": "Interests", "kind": "multiple_choice", "options": ["Forms", "Sheets, docs", "SMS"]},
    {"text": "Subscribe?", "kind": "yes_no"},
    {"text": "Satisfaction", "kind": "rating", "constraints": {"scale": 4}},
    {"text": "Age", "kind": "number"},
    {"text": "Comments", "kind": "long_text"},
    {"text": "Country", "kind": "dropdown", "options": ["FR", "KE"]},
]


async def _open_form(client, owner, questions=QUESTIONS):
    r = await client.post("/api/v1/forms", json={"title": "Survey", "status": "open", "questions": questions},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], [q["id"] for q in r.json()["questions"]]


async def _submit(client, fid, answers):
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": answers})
    assert r.status_code == 201, r.text


async def _summary(sessionmaker, fid, **kwargs):
    async with sessionmaker() as s:
        form = await s.get(Form, uuid.UUID(fid))
        return await summarise(s, form, **kwargs)


def _bars(item):
    return [(b.label, b.count, round(b.percent, 1), b.retired) for b in item.bars]


async def test_counts_percentages_distribution_and_statistics(client, owner, sessionmaker):
    fid, (plan, interests, sub, sat, age, comments, country) = await _open_form(client, owner)
    answers = [
        {plan: "Pro", interests: ["Forms", "Sheets, docs"], sub: "yes", sat: 4, age: 30, comments: "first"},
        {plan: "Pro", interests: ["Sheets, docs"], sub: "no", sat: 2, age: 10, comments: "second"},
        {plan: "Team", interests: ["Forms", "Sheets, docs", "SMS"], sub: "yes", sat: 4, age: -5.5},
        {plan: "Pro", sub: "yes", age: 100},
        {comments: "fifth"},
    ]
    for a in answers:
        await _submit(client, fid, a)

    summary = await _summary(sessionmaker, fid)
    assert summary.total == 5
    items = {i.question.text: i for i in summary.questions}
    assert [i.question.text for i in summary.questions] == [q["text"] for q in QUESTIONS]

    plan_ = items["Plan"]
    assert (plan_.answered, plan_.skipped, plan_.chart) == (4, 1, "bars")
    assert _bars(plan_) == [("Free", 0, 0.0, False), ("Pro", 3, 75.0, False), ("Team", 1, 25.0, False)]
    # Each chosen option counts once, even when it contains the comma that joins the text rendering.
    assert _bars(items["Interests"]) == [("Forms", 2, 66.7, False), ("Sheets, docs", 3, 100.0, False),
                                         ("SMS", 1, 33.3, False)]
    assert items["Interests"].multiple
    assert _bars(items["Subscribe?"]) == [("Yes", 3, 75.0, False), ("No", 1, 25.0, False)]
    rating = items["Satisfaction"]
    assert _bars(rating) == [("1", 0, 0.0, False), ("2", 1, 33.3, False), ("3", 0, 0.0, False),
                             ("4", 2, 66.7, False)]
    assert rating.average == pytest.approx(10 / 3)
    age_ = items["Age"]
    assert age_.chart == "numbers" and age_.answered == 4
    assert (age_.stats.minimum, age_.stats.maximum) == (-5.5, 100)
    assert age_.stats.mean == pytest.approx((30 + 10 - 5.5 + 100) / 4)
    assert age_.stats.median == pytest.approx(20)  # even count: the mean of the middle two (10, 30)
    text = items["Comments"]
    assert text.chart == "latest" and [a.text for a in text.latest] == ["fifth", "second", "first"]
    assert _bars(items["Country"]) == [("FR", 0, 0.0, False), ("KE", 0, 0.0, False)]
    assert items["Country"].answered == 0 and items["Country"].skipped == 5


async def test_odd_median_latest_limit_removed_options_and_archived_questions(client, owner, sessionmaker):
    fid, (plan, *_rest, age, comments, _country) = await _open_form(client, owner)
    for i, (p, a) in enumerate([("Free", 7), ("Team", 1), ("Free", 3)]):
        await _submit(client, fid, {plan: p, age: a, comments: f"note {i}"})
    # Renaming an option keeps the old answers; they show as an option the form no longer offers.
    r = await client.patch(f"/api/v1/forms/{fid}/questions/{plan}", json={"options": ["Basic", "Pro", "Team"]},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/forms/{fid}/questions/{comments}", headers=owner.headers)
    assert r.json()["result"] == "archived"

    summary = await _summary(sessionmaker, fid, latest=2)
    items = {i.question.text: i for i in summary.questions}
    assert _bars(items["Plan"]) == [("Basic", 0, 0.0, False), ("Pro", 0, 0.0, False), ("Team", 1, 33.3, False),
                                    ("Free", 2, 66.7, True)]
    assert items["Age"].stats.median == 3
    archived = summary.questions[-1]
    assert archived.question.text == "Comments" and archived.question.archived
    assert [a.text for a in archived.latest] == ["note 2", "note 1"]


async def test_a_form_without_responses_summarises_to_zeros(client, owner, sessionmaker):
    fid, _ = await _open_form(client, owner)
    summary = await _summary(sessionmaker, fid)
    assert summary.total == 0
    for item in summary.questions:
        assert item.answered == 0 and item.latest == [] and item.stats is None
        assert all(b.count == 0 and b.percent == 0 for b in item.bars)
    assert (await _summary(sessionmaker, (await _open_form(client, owner, []))[0])).questions == []
