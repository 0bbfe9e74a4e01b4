"""The form builder over HTTP: inline (htmx) edits with saved and error states, the same edits as
plain posts without JavaScript, adding every kind of question, choices, answer rules, reordering,
archive/delete with confirmation, settings, publishing, the preview, CSRF and ownership (404)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape

from sqlalchemy import func, select

from tests.integration import test_pages_accounts as account_pages
from webapp.forms.models import Form, Question
from webapp.responses.models import Answer
from webapp.timeutil import utcnow

CSRF_RE, api_form, log_in, errors_in = (account_pages.CSRF_RE, account_pages.api_form, account_pages.log_in,
                                        account_pages.errors_in)
HX = {"HX-Request": "true"}

QUESTIONS = [
    {"text": "Name", "mandatory": True},
    {"text": "Colour", "kind": "single_choice", "options": ["Red", "Blue"]},
    {"text": "Age", "kind": "number"},
]


async def _signed_in(client, owner, **form_body):
    await log_in(client, owner.email)
    form = await api_form(client, owner, **form_body)
    r = await client.get(f"/forms/{form['id']}/edit")
    assert r.status_code == 200, r.text
    token = CSRF_RE.search(r.text).group(1)
    return form, token, r.text


async def _post(client, path, token, data=None, *, htmx=True):
    return await client.post(path, data={"_csrf_token": token, **(data or {})}, headers=HX if htmx else {},
                             follow_redirects=False)


async def _form(sessionmaker, fid) -> Form:
    async with sessionmaker() as s:
        return await s.get(Form, uuid.UUID(fid))


async def _questions(sessionmaker, fid, *, archived=False) -> list[Question]:
    async with sessionmaker() as s:
        stmt = select(Question).where(Question.form_id == uuid.UUID(fid)).order_by(Question.position)
        if not archived:
            stmt = stmt.where(Question.archived_at.is_(None))
        return list(await s.scalars(stmt))


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", html)))


def _question_fields(q: Question, **changes) -> dict:
    data = {"text": q.text, "help_text": q.help_text, **({"mandatory": "1"} if q.mandatory else {})}
    data.update(changes)
    return data


async def test_the_builder_shows_the_form_its_questions_settings_and_share_link(client, owner):
    form, _, html = await _signed_in(client, owner, questions=QUESTIONS, description="About you")
    assert 'aria-current="page">Build</a>' in html
    assert 'id="form-title"' in html and 'value="Survey"' in html and ">About you</textarea>" in html
    for q in form["questions"]:
        assert f'id="qcard-{q["id"]}"' in html
        assert f'id="qe-{q["id"]}-text"' in html
    assert html.count('name="options"') == 2  # Red, Blue
    assert f'value="http://testserver.local/f/{form["slug"]}"' in html and 'data-copy="#share-link"' in html
    assert ">Publish</button>" in html and 'id="settings-max_responses"' in html
    assert 'id="add-question"' in html and 'value="multiple_choice"' in html
    assert "/static/js/builder.js" in html


async def test_inline_title_edit_saves_at_once_or_shows_the_error_in_place(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner)
    r = await _post(client, f"/forms/{form['id']}/edit/details", token,
                    {"title": "Customer feedback", "description": "Two minutes"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<form id="form-details"') and "✓ Saved" in r.text
    stored = await _form(sessionmaker, form["id"])
    assert (stored.title, stored.description) == ("Customer feedback", "Two minutes")

    r = await _post(client, f"/forms/{form['id']}/edit/details", token, {"title": "   ", "description": "x"})
    assert r.status_code == 422
    assert errors_in(r.text) == ["Enter a title."]
    assert 'aria-invalid="true" aria-describedby="form-title-error"' in r.text and "Not saved" in r.text
    r = await _post(client, f"/forms/{form['id']}/edit/details", token, {"title": "x" * 201})
    assert r.status_code == 422 and errors_in(r.text) == ["The title can be at most 200 characters."]
    assert (await _form(sessionmaker, form["id"])).title == "Customer feedback"


async def test_without_javascript_edits_redirect_back_or_show_the_whole_page_with_errors(client, owner,
                                                                                        sessionmaker):
    form, token, _ = await _signed_in(client, owner, questions=QUESTIONS)
    r = await _post(client, f"/forms/{form['id']}/edit/details", token, {"title": "Renamed"}, htmx=False)
    assert r.status_code == 303 and r.headers["location"] == f"/forms/{form['id']}/edit"
    page = await client.get(r.headers["location"])
    assert "Saved the title and description." in page.text

    name = (await _questions(sessionmaker, form["id"]))[0]
    r = await _post(client, f"/forms/{form['id']}/questions/{name.id}", token, {"text": ""}, htmx=False)
    assert r.status_code == 422
    assert '<div class="error-summary"' in r.text and f'href="#qe-{name.id}-text"' in r.text
    assert "<header" in r.text and 'id="publish"' in r.text  # the whole page, not a fragment
    assert errors_in(r.text)[0] == "Enter the question."


async def test_adding_every_kind_of_question(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner)
    kinds = ["short_text", "long_text", "number", "email", "phone", "url", "single_choice", "multiple_choice",
             "dropdown", "date", "rating", "yes_no"]
    for i, kind in enumerate(kinds):
        r = await _post(client, f"/forms/{form['id']}/questions", token, {"kind": kind, "text": f"Question {i}"})
        assert r.status_code == 200, r.text
        assert r.text.lstrip().startswith('<section id="questions"')
        assert r.text.count('class="qcard card') == i + 1
        assert 'id="add-question"' in r.text and 'hx-swap-oob="true"' in r.text  # a fresh add form
    stored = await _questions(sessionmaker, form["id"])
    assert [q.kind for q in stored] == kinds and [q.position for q in stored] == list(range(len(kinds)))
    by_kind = {q.kind: q for q in stored}
    assert by_kind["dropdown"].options == ["Option 1", "Option 2"]
    assert by_kind["rating"].constraints == {"scale": 5}
    assert by_kind["email"].options == []

    r = await _post(client, f"/forms/{form['id']}/questions", token, {"kind": "short_text", "text": "  "})
    assert r.status_code == 422
    assert r.headers["hx-retarget"] == "#add-question" and r.headers["hx-reswap"] == "outerHTML"
    assert errors_in(r.text) == ["Write the question first, e.g. “What is your name?”."]
    r = await _post(client, f"/forms/{form['id']}/questions", token, {"kind": "hologram", "text": "Q"})
    assert r.status_code == 422 and "Choose a kind of question" in r.text
    assert len(await _questions(sessionmaker, form["id"])) == len(kinds)


async def test_editing_a_question_in_place(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner, questions=QUESTIONS)
    name, colour, age = await _questions(sessionmaker, form["id"])
    url = f"/forms/{form['id']}/questions"

    r = await _post(client, f"{url}/{name.id}", token, {"text": "Full name", "help_text": "As on your ID"})
    assert r.status_code == 200 and "✓ Saved" in r.text
    # A plain save does not redraw the fields (what is typed meanwhile would be lost): it replaces
    # the heading, the saved state and the controls' labels out of band, and nothing else.
    assert r.headers["hx-reswap"] == "none"
    assert 'name="text"' not in r.text and "<article" not in r.text
    assert f'<h3 class="qcard__title" id="qe-{name.id}-heading" hx-swap-oob="true">' in r.text
    assert f'id="qe-{name.id}-state" hx-swap-oob="true"' in r.text
    assert f'id="qe-{name.id}-actions" hx-swap-oob="true"' in r.text and "Move down<span class=\"visually-hidden\">: Full name" in r.text
    name = (await _questions(sessionmaker, form["id"]))[0]
    assert (name.text, name.help_text, name.mandatory) == ("Full name", "As on your ID", False)
    # After an error the card is drawn whole, and the next good save draws it whole again.
    r = await _post(client, f"{url}/{name.id}", token, {"text": " "})
    assert r.status_code == 422 and 'name="shown_errors"' in r.text
    r = await _post(client, f"{url}/{name.id}", token, {"text": "Full name", "shown_errors": "1"})
    assert r.status_code == 200 and "hx-reswap" not in r.headers
    assert r.text.lstrip().startswith(f'<article class="qcard card" id="qcard-{name.id}"')
    assert "field-error" not in r.text and 'name="shown_errors"' not in r.text

    # Rules: shown as inputs, parsed, checked by the service; bad input is an inline error.
    r = await _post(client, f"{url}/{age.id}", token, _question_fields(age, c_min="0", c_max="130.5",
                                                                       c_integer_only="1"))
    assert r.status_code == 200
    assert (await _questions(sessionmaker, form["id"]))[2].constraints == {"min": 0, "max": 130.5,
                                                                          "integer_only": True}
    r = await _post(client, f"{url}/{age.id}", token, _question_fields(age, c_min="ten"))
    assert r.status_code == 422 and errors_in(r.text) == ["Enter a number."]
    assert f'id="qe-{age.id}-c_min-error"' in r.text
    r = await _post(client, f"{url}/{age.id}", token, _question_fields(age, c_min="9", c_max="3"))
    assert r.status_code == 422 and errors_in(r.text) == ["min cannot be greater than max."]
    assert (await _questions(sessionmaker, form["id"]))[2].constraints["max"] == 130.5  # nothing half-saved


async def test_choices_are_added_removed_reordered_and_checked(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner, questions=QUESTIONS)
    colour = (await _questions(sessionmaker, form["id"]))[1]
    url = f"/forms/{form['id']}/questions/{colour.id}"

    async def options():
        return (await _questions(sessionmaker, form["id"]))[1].options

    def post(*choices, op=None):
        data = {"_csrf_token": token, **_question_fields(colour), "options": list(choices), **({"op": op} if op else {})}
        return client.post(url, data=data, headers=HX)

    r = await post("Red", "Blue", op="add_option")
    assert r.status_code == 200 and await options() == ["Red", "Blue", "Option 3"]
    assert f'id="qe-{colour.id}-option-2"' in r.text and "autofocus" in r.text
    r = await post("Red", "Blue", "Green", op="option_up:2")
    assert await options() == ["Red", "Green", "Blue"]
    r = await post("Red", "Green", "Blue", op="remove_option:0")
    assert await options() == ["Green", "Blue"]
    r = await post("Green", "Green")
    assert r.status_code == 422 and errors_in(r.text) == ["The option 'Green' appears twice."]
    assert f'id="qe-{colour.id}-option-1" name="options" type="text" value="Green"' in r.text
    assert await options() == ["Green", "Blue"]


async def test_reordering_with_move_buttons_and_with_drag_and_drop(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner, questions=QUESTIONS)
    a, b, c = await _questions(sessionmaker, form["id"])
    url = f"/forms/{form['id']}/questions"
    r = await _post(client, f"{url}/{a.id}/move", token, {"direction": "down"})
    assert r.status_code == 200 and "Moved “Name” to position 2 of 3." in r.text
    assert [q.id for q in await _questions(sessionmaker, form["id"])] == [b.id, a.id, c.id]
    r = await _post(client, f"{url}/{b.id}/move", token, {"direction": "up"})  # already first: no change
    assert r.status_code == 200
    assert [q.id for q in await _questions(sessionmaker, form["id"])] == [b.id, a.id, c.id]

    r = await _post(client, f"{url}/reorder", token, {"order": [str(c.id), str(b.id), str(a.id)]})
    assert r.status_code == 200
    assert [q.id for q in await _questions(sessionmaker, form["id"])] == [c.id, b.id, a.id]
    assert r.text.index(f'qcard-{c.id}') < r.text.index(f'qcard-{b.id}') < r.text.index(f'qcard-{a.id}')
    r = await _post(client, f"{url}/reorder", token, {"order": [str(c.id)]})
    assert r.status_code == 409 and "reload" in r.text
    r = await _post(client, f"{url}/reorder", token, {"order": "not-an-id"})
    assert r.status_code == 400
    assert [q.id for q in await _questions(sessionmaker, form["id"])] == [c.id, b.id, a.id]


async def test_removing_asks_first_then_archives_answered_questions_or_deletes(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner, questions=QUESTIONS, status="open")
    name, colour, age = await _questions(sessionmaker, form["id"])
    r = await client.post(f"/api/v1/forms/{form['id']}/responses", json={"answers": {str(name.id): "Ada"}})
    assert r.status_code == 201
    url = f"/forms/{form['id']}/questions"

    page = await client.get(f"{url}/{name.id}/remove")
    assert page.status_code == 200
    assert "This question has 1 answer." in _text(page.text)
    assert ">Archive question</button>" in page.text and "Delete question and 1 answer" in page.text
    r = await _post(client, f"{url}/{name.id}/remove", token, {"mode": "archive"}, htmx=False)
    assert r.status_code == 303
    builder = await client.get(r.headers["location"])
    assert "Archived “Name”" in builder.text and "Archived questions (1)" in builder.text
    assert [q.text for q in await _questions(sessionmaker, form["id"])] == ["Colour", "Age"]

    page = await client.get(f"{url}/{age.id}/remove")
    assert "Nobody has answered it yet" in page.text and "Archive question" not in page.text
    await _post(client, f"{url}/{age.id}/remove", token, {"mode": "delete"}, htmx=False)
    # Permanently deleting the archived one takes its answers with it.
    await _post(client, f"{url}/{name.id}/remove", token, {"mode": "delete"}, htmx=False)
    assert [q.text for q in await _questions(sessionmaker, form["id"], archived=True)] == ["Colour"]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Answer)) == 0


async def test_publish_close_and_reopen(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner)
    url = f"/forms/{form['id']}/edit/status"
    r = await _post(client, url, token, {"action": "publish"})
    assert r.status_code == 422 and "Add at least one question before publishing" in r.text
    assert (await _form(sessionmaker, form["id"])).status == "draft"

    await _post(client, f"/forms/{form['id']}/questions", token, {"kind": "short_text", "text": "Name"})
    r = await _post(client, url, token, {"action": "publish"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<section id="publish"')
    assert "Published." in r.text and ">Close form</button>" in r.text
    assert (await _form(sessionmaker, form["id"])).status == "open"
    r = await _post(client, url, token, {"action": "close"})
    assert ">Reopen</button>" in r.text and (await _form(sessionmaker, form["id"])).status == "closed"
    r = await _post(client, url, token, {"action": "reopen"}, htmx=False)
    assert r.status_code == 303 and (await _form(sessionmaker, form["id"])).status == "open"
    r = await _post(client, url, token, {"action": "delete-everything"})
    assert r.status_code == 400


async def test_settings_save_and_explain_bad_values(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner)
    url = f"/forms/{form['id']}/edit/settings"
    when = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    r = await _post(client, url, token, {"closes_at": when.strftime("%Y-%m-%dT%H:%M"), "max_responses": "250",
                                         "confirmation_message": "Thanks, we read every answer."})
    assert r.status_code == 200 and "✓ Saved" in r.text
    stored = await _form(sessionmaker, form["id"])
    assert (stored.closes_at, stored.max_responses, stored.confirmation_message) == (
        when, 250, "Thanks, we read every answer.")
    assert f'value="{when:%Y-%m-%dT%H:%M}"' in r.text

    r = await _post(client, url, token, {"closes_at": "2001-01-01T00:00", "max_responses": "lots"})
    assert r.status_code == 422
    assert errors_in(r.text) == ["Choose a time in the future, or use Close to stop responses now.",
                                 "Enter a whole number from 1 to 100000000, or leave it empty for no limit."]
    assert 'value="lots"' in r.text
    assert (await _form(sessionmaker, form["id"])).max_responses == 250

    r = await _post(client, url, token, {"closes_at": "", "max_responses": "", "confirmation_message": ""})
    stored = await _form(sessionmaker, form["id"])
    assert (stored.closes_at, stored.max_responses, stored.confirmation_message) == (None, None, "")


async def test_preview_is_the_respondent_page_without_a_way_to_submit(client, owner):
    form, _, _ = await _signed_in(client, owner, questions=QUESTIONS)
    r = await client.get(f"/forms/{form['id']}/preview")
    assert r.status_code == 200
    assert "respond-body" in r.text and "<strong>Preview.</strong>" in r.text
    colour = form["questions"][1]
    assert '<legend>Colour <span class="optional">(optional)</span></legend>' in r.text
    assert f'id="q-{colour["id"]}" name="{colour["id"]}" value="Red"' in r.text
    assert 'method="post"' not in r.text and 'type="button" class="btn btn--primary btn--large" disabled' in r.text


async def test_state_changes_need_the_csrf_token(client, owner, sessionmaker):
    form, _, _ = await _signed_in(client, owner)
    r = await client.post(f"/forms/{form['id']}/edit/details", data={"title": "Hijacked"}, headers=HX)
    assert r.status_code == 403
    r = await client.post(f"/forms/{form['id']}/edit/status", data={"action": "publish"})
    assert r.status_code == 403 and "expired or was sent from another site" in r.text
    assert (await _form(sessionmaker, form["id"])).title == "Survey"


async def test_another_user_gets_404_on_the_builder_and_every_endpoint(client, owner, make_owner, sessionmaker):
    form = await api_form(client, owner, questions=QUESTIONS)
    qid = form["questions"][0]["id"]
    intruder = await make_owner()
    await log_in(client, intruder.email)
    token = CSRF_RE.search((await client.get("/forms")).text).group(1)
    fid = form["id"]
    for path in (f"/forms/{fid}/edit", f"/forms/{fid}/preview", f"/forms/{fid}/questions/{qid}/remove"):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "Survey" not in r.text
    posts = [(f"/forms/{fid}/edit/details", {"title": "Mine now"}), (f"/forms/{fid}/edit/settings", {}),
             (f"/forms/{fid}/edit/status", {"action": "publish"}),
             (f"/forms/{fid}/questions", {"kind": "short_text", "text": "Q"}),
             (f"/forms/{fid}/questions/{qid}", {"text": "Mine"}), (f"/forms/{fid}/questions/{qid}/move",
                                                                  {"direction": "down"}),
             (f"/forms/{fid}/questions/reorder", {"order": qid}), (f"/forms/{fid}/questions/{qid}/remove",
                                                                  {"mode": "delete"})]
    for path, data in posts:
        for htmx in (True, False):
            r = await _post(client, path, token, data, htmx=htmx)
            assert r.status_code == 404, (path, htmx)
    stored = await _form(sessionmaker, fid)
    assert (stored.title, stored.status, stored.version) == ("Survey", "draft", 1)
    assert [q.text for q in await _questions(sessionmaker, fid)] == ["Name", "Colour", "Age"]
    # Malformed ids are simply pages that do not exist.
    assert (await client.get("/forms/not-a-form/edit")).status_code == 404
    await log_in(client, owner.email)
    assert (await client.get(f"/forms/{fid}/questions/not-a-question/remove")).status_code == 404


async def test_anonymous_visitors_are_sent_to_log_in(client, owner):
    form = await api_form(client, owner)
    r = await client.get(f"/forms/{form['id']}/edit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/forms/{form['id']}/edit"


async def test_a_close_date_that_has_passed_does_not_block_other_settings(client, owner, sessionmaker):
    form, token, _ = await _signed_in(client, owner)
    past = utcnow().replace(second=0, microsecond=0) - timedelta(days=1)
    async with sessionmaker() as s, s.begin():
        (await s.get(Form, uuid.UUID(form["id"]))).closes_at = past
    r = await _post(client, f"/forms/{form['id']}/edit/settings", token, {
        "closes_at": past.strftime("%Y-%m-%dT%H:%M"), "confirmation_message": "See you next year"})
    assert r.status_code == 200, r.text
    stored = await _form(sessionmaker, form["id"])
    assert (stored.closes_at, stored.confirmation_message) == (past, "See you next year")
