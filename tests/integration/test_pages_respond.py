"""The respondent page /f/{slug} over HTTP: accessible markup for every question kind, server-side
validation that keeps what was typed (422), the thank-you page, friendly pages for forms that do
not take responses, the honeypot, the per-address submit limit and CSRF."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser

from sqlalchemy import func, select, update

from tests.integration import test_pages_accounts as account_pages
from webapp.forms.models import Form
from webapp.responses.models import Answer, Response
from webapp.timeutil import utcnow

CSRF_RE, api_form = account_pages.CSRF_RE, account_pages.api_form
make_client = account_pages.make_client  # the fixture: an app with some settings changed

QUESTIONS = [
    {"text": "Name", "mandatory": True, "help_text": "First and last"},
    {"text": "Story", "kind": "long_text"},
    {"text": "Age", "kind": "number", "constraints": {"integer_only": True, "min": 0, "max": 130}},
    {"text": "Weight", "kind": "number"},
    {"text": "Email", "kind": "email", "mandatory": True},
    {"text": "Phone", "kind": "phone"},
    {"text": "Site", "kind": "url"},
    {"text": "Colour", "kind": "single_choice", "options": ["Red", "Blue"]},
    {"text": "Hobbies", "kind": "multiple_choice", "options": ["Chess", "Golf", "Judo"],
     "constraints": {"max_selections": 2}},
    {"text": "Country", "kind": "dropdown", "options": ["France", "Kenya"]},
    {"text": "Born", "kind": "date", "constraints": {"min_date": "1900-01-01"}},
    {"text": "Rating", "kind": "rating", "constraints": {"scale": 4}},
    {"text": "Agree?", "kind": "yes_no", "mandatory": True},
]


class Page(HTMLParser):
    """The bits of a page these tests look at: controls, labels, fieldsets and ids."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.fieldsets: list[dict[str, object]] = []
        self._open_fieldset: dict[str, object] | None = None
        self._in_legend = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "label" and "for" in a:
            self.label_for.add(a["for"])
        if tag in {"input", "select", "textarea"} and a.get("type") != "hidden":
            self.controls.append({"tag": tag, **a})
            if self._open_fieldset is not None:
                self._open_fieldset["names"].add(a.get("name"))
        if tag == "fieldset":
            self._open_fieldset = {"attrs": a, "legend": "", "names": set()}
            self.fieldsets.append(self._open_fieldset)
        if tag == "legend":
            self._in_legend = True

    def handle_endtag(self, tag):
        if tag == "legend":
            self._in_legend = False
        if tag == "fieldset":
            self._open_fieldset = None

    def handle_data(self, data):
        if self._in_legend and self._open_fieldset is not None:
            self._open_fieldset["legend"] += data

    def control(self, name: str, value: str | None = None) -> dict[str, str]:
        return next(c for c in self.controls if c.get("name") == name and (value is None or c.get("value") == value))


async def _open(client, owner, questions=QUESTIONS, **extra):
    form = await api_form(client, owner, title="Survey <script>", status="open", questions=questions, **extra)
    return form, [q["id"] for q in form["questions"]]


async def _token(client, slug) -> str:
    r = await client.get(f"/f/{slug}")
    return CSRF_RE.search(r.text).group(1)


async def _counts(sessionmaker) -> tuple[int, int]:
    async with sessionmaker() as s:
        return (await s.scalar(select(func.count()).select_from(Response)) or 0,
                await s.scalar(select(func.count()).select_from(Answer)) or 0)


async def test_every_kind_renders_with_labels_fieldsets_and_descriptions(client, owner):
    form, ids = await _open(client, owner)
    r = await client.get(f"/f/{form['slug']}")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert r.headers["cache-control"] == "no-store"  # it carries a CSRF token
    assert "Survey &lt;script&gt;" in r.text and "<script>" not in r.text.split("</head>")[1]  # escaped
    page = Page(r.text)
    visible = [c for c in page.controls if c.get("name") != "fw_website"]
    assert all(c.get("id") in page.label_for for c in visible), "every control has a <label for>"
    name, story, age, weight, email, phone, site, colour, hobbies, country, born, rating, agree = ids
    kinds = {c["name"]: (c["tag"], c.get("type", "")) for c in visible}
    assert kinds[name] == ("input", "text") and kinds[story] == ("textarea", "")
    assert kinds[email] == ("input", "email") and kinds[phone] == ("input", "tel")
    assert kinds[site] == ("input", "url") and kinds[born] == ("input", "date")
    assert kinds[country] == ("select", "") and kinds[hobbies] == ("input", "checkbox")
    assert kinds[colour] == ("input", "radio") and kinds[agree] == ("input", "radio")
    assert page.control(age)["step"] == "1" and page.control(age)["min"] == "0" and page.control(age)["max"] == "130"
    assert page.control(weight)["step"] == "any"
    assert page.control(born)["min"] == "1900-01-01"
    assert [c["value"] for c in visible if c["name"] == rating] == ["1", "2", "3", "4"]
    assert [c["value"] for c in visible if c["name"] == agree] == ["yes", "no"]
    # Choice groups are fieldsets named by a legend, one per choice question.
    groups = {fs["legend"].split("*")[0].replace("(optional)", "").strip(): fs["names"] for fs in page.fieldsets}
    assert groups == {"Colour": {colour}, "Hobbies": {hobbies}, "Rating": {rating}, "Agree?": {agree}}
    # Help text is tied to its control; required ones say so.
    assert page.control(name)["aria-describedby"] == f"q-{name}-help" and f"q-{name}-help" in page.ids
    assert "required" in page.control(name) and "required" not in page.control(story)
    hobbies_fs = next(fs for fs in page.fieldsets if hobbies in fs["names"])
    assert hobbies_fs["attrs"]["aria-describedby"] == f"q-{hobbies}-help"
    assert "Choose up to 2." in r.text
    # The honeypot is present but hidden from people and assistive technology.
    assert re.search(r'<div class="hp" aria-hidden="true">.*?name="fw_website".*?tabindex="-1"', r.text, re.S)
    assert 'novalidate' in r.text and 'action="/f/' + form["slug"] + '"' in r.text


async def test_failed_validation_rerenders_with_errors_and_keeps_everything_typed(client, owner, sessionmaker):
    form, ids = await _open(client, owner)
    name, story, age, weight, email, phone, site, colour, hobbies, country, born, rating, agree = ids
    token = await _token(client, form["slug"])
    typed = {story: "Line one\nLine <two> & \"three\"", age: "3.5", email: "nope", colour: "Blue",
             hobbies: ["Chess", "Judo", "Golf"], country: "Kenya", born: "1850-02-03", rating: "3",
             site: "example.org"}
    r = await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, **typed, "fw_website": ""})
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    assert await _counts(sessionmaker) == (0, 0)
    summary = re.search(r'<div class="error-summary".*?</div>', r.text, re.S).group(0)
    links = [(h, unescape(t)) for h, t in re.findall(r'<a href="(#q-[^"]+)">(.*?)</a>', summary)]
    assert links == [
        (f"#q-{name}", "Name: This question is required."),
        (f"#q-{age}", "Age: Enter a whole number."),
        (f"#q-{email}", "Email: Enter an email address like name@example.com."),
        (f"#q-{hobbies}", "Hobbies: Choose at most 2 options."),
        (f"#q-{born}", "Born: Enter a date on or after 1900-01-01."),
        (f"#q-{agree}", "Agree?: This question is required."),
    ]
    assert "<title>Error: " in r.text
    page = Page(r.text)
    for qid in (name, age, email, born):
        control = page.control(qid)
        assert f"q-{qid}-error" in control["aria-describedby"].split() and control["aria-invalid"] == "true"
        assert f"q-{qid}-error" in page.ids
    assert f'aria-describedby="q-{hobbies}-help q-{hobbies}-error"' in r.text  # on the fieldset
    # Everything typed is still there, escaped.
    assert "Line one\nLine &lt;two&gt; &amp; &#34;three&#34;</textarea>" in r.text
    assert page.control(age)["value"] == "3.5" and page.control(email)["value"] == "nope"
    assert page.control(site)["value"] == "example.org" and page.control(born)["value"] == "1850-02-03"
    assert "checked" in page.control(colour, "Blue") and "checked" not in page.control(colour, "Red")
    assert all("checked" in page.control(hobbies, v) for v in ("Chess", "Judo", "Golf"))
    assert "checked" in page.control(rating, "3")
    assert '<option value="Kenya" selected>' in r.text


async def test_success_goes_to_the_thank_you_page_with_the_confirmation(client, owner, sessionmaker):
    form, ids = await _open(client, owner, confirmation_message="Merci <3, we'll be in touch.")
    name, story, age, weight, email, phone, site, colour, hobbies, country, born, rating, agree = ids
    token = await _token(client, form["slug"])
    r = await client.post(f"/f/{form['slug']}", follow_redirects=False, data={
        "_csrf_token": token, name: " Ada ", age: "36", weight: "", email: "ada@example.com", hobbies: ["Judo", "Chess"],
        country: "France", rating: "4", agree: "no", "fw_website": ""})
    assert r.status_code == 303 and r.headers["location"] == f"/f/{form['slug']}/thanks"
    thanks = await client.get(r.headers["location"])
    assert thanks.status_code == 200 and "Thank you!" in thanks.text
    assert "Merci &lt;3, we&#39;ll be in touch." in thanks.text
    r = await client.get(f"/api/v1/forms/{form['id']}/responses", headers=owner.headers)
    answers = {a["question_id"]: a["value"] for a in r.json()["items"][0]["answers"]}
    assert answers == {name: "Ada", age: 36, email: "ada@example.com", hobbies: ["Chess", "Judo"],
                       country: "France", rating: 4, agree: False}


async def test_a_repeated_field_is_an_error_not_a_silent_choice(client, owner, sessionmaker):
    form, (colour,) = await _open(client, owner, [{"text": "Colour", "kind": "single_choice",
                                                  "options": ["Red", "Blue"]}])
    token = await _token(client, form["slug"])
    r = await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, colour: ["Red", "Blue"]})
    assert r.status_code == 422 and "Colour: " in r.text
    assert await _counts(sessionmaker) == (0, 0)


async def test_forms_that_take_no_responses_get_a_friendly_page_with_the_right_status(client, owner, sessionmaker):
    one = [{"text": "Q"}]
    draft = await api_form(client, owner, title="Draft form", questions=one)
    closed = await api_form(client, owner, title="Closed form", status="closed", questions=one)
    past = await api_form(client, owner, title="Past form", status="open", questions=one,
                          closes_at=(utcnow() + timedelta(hours=1)).isoformat())
    full = await api_form(client, owner, title="Full form", status="open", questions=one, max_responses=1)
    async with sessionmaker() as s, s.begin():
        await s.execute(update(Form).where(Form.id == past["id"]).values(closes_at=utcnow() - timedelta(hours=1)))
    r = await client.post(f"/api/v1/forms/{full['id']}/responses", json={"answers": {}})
    assert r.status_code == 201
    token = await account_pages.csrf_token(client)
    expected = [(draft, 409, "This form isn't open yet"), (closed, 409, "This form is closed"),
                (past, 410, "This form has closed"), (full, 409, "This form is full")]
    for form, status, title in expected:
        for method in ("GET", "POST"):
            r = await client.request(method, f"/f/{form['slug']}",
                                     data={"_csrf_token": token} if method == "POST" else None)
            assert (r.status_code, method) == (status, method), form["title"]
            assert title in unescape(r.text) and form["title"] in r.text and 'name="fw_website"' not in r.text
    assert await _counts(sessionmaker) == (1, 0)
    for slug in ("doesNotExist", "x" * 40, "bad%20slug"):
        r = await client.get(f"/f/{slug}")
        assert r.status_code == 404 and "We couldn't find this form" in unescape(r.text)
        assert (await client.get(f"/f/{slug}/thanks")).status_code == 404
    r = await client.post("/f/doesNotExist", data={"_csrf_token": token})
    assert r.status_code == 404


async def test_filled_honeypot_stores_nothing_but_looks_like_success(client, owner, sessionmaker):
    form, (name,) = await _open(client, owner, [{"text": "Name"}])
    token = await _token(client, form["slug"])
    r = await client.post(f"/f/{form['slug']}", follow_redirects=False,
                          data={"_csrf_token": token, name: "Buy pills", "fw_website": "http://spam.example"})
    assert r.status_code == 303 and r.headers["location"] == f"/f/{form['slug']}/thanks"
    assert "Thank you!" in (await client.get(r.headers["location"])).text
    assert await _counts(sessionmaker) == (0, 0)


async def test_submissions_without_csrf_token_are_refused(client, owner, sessionmaker):
    form, (name,) = await _open(client, owner, [{"text": "Name"}])
    await _token(client, form["slug"])  # has the cookie, not the field: a cross-site post
    r = await client.post(f"/f/{form['slug']}", data={name: "x"})
    assert r.status_code == 403 and "expired or was sent from another site" in r.text
    assert await _counts(sessionmaker) == (0, 0)


async def test_submissions_are_limited_per_address(make_client, owner, sessionmaker):
    client = await make_client(submit_rate_per_minute=2)
    form, (name,) = await _open(client, owner, [{"text": "Name", "mandatory": True}])
    token = await _token(client, form["slug"])
    assert (await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, name: ""})).status_code == 422
    ok = await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, name: "A"}, follow_redirects=False)
    assert ok.status_code == 303
    r = await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, name: "B"})
    assert r.status_code == 429 and "Too many submissions" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 60
    assert await _counts(sessionmaker) == (1, 1)


async def test_zero_disables_the_submit_limit(make_client, owner, sessionmaker):
    client = await make_client(submit_rate_per_minute=0)
    form, (name,) = await _open(client, owner, [{"text": "Name"}])
    token = await _token(client, form["slug"])
    for n in range(5):
        r = await client.post(f"/f/{form['slug']}", data={"_csrf_token": token, name: str(n)}, follow_redirects=False)
        assert r.status_code == 303
    assert await _counts(sessionmaker) == (5, 5)


async def test_blank_form_is_one_page_for_all_but_each_visitor_gets_their_own_token(client, owner, sessionmaker):
    form, (name,) = await _open(client, owner, [{"text": "Name"}])
    url = f"/f/{form['slug']}"
    seen = []
    for visitor in range(3):
        client.cookies.clear()
        r = await client.get(url)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        token = CSRF_RE.search(r.text).group(1)
        assert f'"X-CSRFToken": "{token}"' in r.text  # htmx requests carry the same visitor's token
        seen.append((token, r.text))
        sent = await client.post(url, data={"_csrf_token": token, name: f"visitor {visitor}"}, follow_redirects=False)
        assert sent.status_code == 303, sent.text
    tokens = [token for token, _ in seen]
    assert len(set(tokens)) == 3
    for token, text in seen:
        assert [t for t in tokens if t in text] == [token]
    assert len({text.replace(token, "TOKEN") for token, text in seen}) == 1
    client.cookies.clear()
    await client.get(url)
    stolen = await client.post(url, data={"_csrf_token": tokens[0], name: "someone else's token"})
    assert stolen.status_code == 403
    assert await _counts(sessionmaker) == (3, 3)


async def test_blank_form_page_shows_every_change_at_once(client, owner, sessionmaker):
    form, (name,) = await _open(client, owner, [{"text": "Name"}])
    url, api = f"/f/{form['slug']}", f"/api/v1/forms/{form['id']}"
    assert "Name" in (await client.get(url)).text
    r = await client.patch(api, json={"title": "Renamed <b>survey</b>"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    page = (await client.get(url)).text
    assert "Renamed &lt;b&gt;survey&lt;/b&gt;" in page and "Survey &lt;script&gt;" not in page
    r = await client.post(f"{api}/questions", json={"text": "Favourite colour"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    assert "Favourite colour" in (await client.get(url)).text
    r = await client.patch(api, json={"status": "closed"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    closed = await client.get(url)
    assert closed.status_code == 409 and "This form is closed" in unescape(closed.text)


async def test_blank_form_page_closes_when_its_closing_time_passes(client, owner, sessionmaker):
    form, _ = await _open(client, owner, [{"text": "Name"}], closes_at=(utcnow() + timedelta(hours=1)).isoformat())
    url = f"/f/{form['slug']}"
    assert (await client.get(url)).status_code == 200
    assert (await client.get(url)).status_code == 200
    # Time passes: nothing about the form changes but the clock.
    async with sessionmaker() as s, s.begin():
        await s.execute(update(Form).where(Form.id == form["id"])
                        .values(closes_at=utcnow() - timedelta(seconds=1), updated_at=Form.updated_at))
    r = await client.get(url)
    assert r.status_code == 410 and "This form has closed" in unescape(r.text)
