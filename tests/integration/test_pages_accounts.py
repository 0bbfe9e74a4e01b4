"""Account pages and the dashboard over HTTP: sign up, log in/out, sessions, throttling, CSRF,
password change, API tokens, and the forms list (always only the owner's own forms)."""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta
from html import unescape

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from webapp.accounts.models import User, UserSession
from webapp.app import create_app
from webapp.forms.models import Form, Question
from webapp.responses.models import Response
from webapp.timeutil import utcnow

PASSWORD = "correct horse battery"  # make_owner's default
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


# ---- helpers shared with test_pages_respond ------------------------------------------------------

async def csrf_token(client, path: str = "/login") -> str:
    r = await client.get(path)
    match = CSRF_RE.search(r.text)
    assert match, f"no CSRF field on {path} ({r.status_code})"
    return match.group(1)


async def post_form(client, path: str, data: dict, *, token_from: str = "/login", **kwargs):
    token = await csrf_token(client, token_from)
    return await client.post(path, data={"_csrf_token": token, **data}, follow_redirects=False, **kwargs)


async def log_in(client, email: str, password: str = PASSWORD, next_: str = ""):
    return await post_form(client, "/login", {"email": email, "password": password, "next": next_})


def set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def errors_in(html: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", m)).replace("Error:", "").strip()
            for m in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', html, re.S)]


async def api_form(client, owner, **body):
    r = await client.post("/api/v1/forms", json={"title": "Survey", **body}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
async def make_client(settings, clean_db):
    """A client for an app with some settings changed (e.g. a tiny throttle limit)."""
    async with AsyncExitStack() as stack:
        async def factory(base_url: str = "http://testserver.local", **changes):
            app = create_app(replace(settings, **changes))
            return await stack.enter_async_context(AsyncTestClient(app, base_url=base_url))

        yield factory


async def _count(sessionmaker, model, *where) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where)) or 0


# ---- sign up, log in, log out --------------------------------------------------------------------

async def test_sign_up_starts_a_session_and_lands_on_the_dashboard(client, sessionmaker):
    r = await post_form(client, "/signup", {"email": "  Ada@Example.COM ", "password": "a long passphrase"},
                        token_from="/signup")
    assert r.status_code == 303 and r.headers["location"] == "/forms"
    cookie = set_cookies(r)["fw_session"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # test env is http
    assert f"Max-Age={14 * 86400}" in cookie
    value = cookie.split("=", 1)[1].split(";", 1)[0]
    async with sessionmaker() as s:
        row = await s.scalar(select(UserSession))
    assert row.token_hash == hashlib.sha256(value.encode()).hexdigest() and value not in row.token_hash
    page = await client.get("/forms")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Welcome to Formwright" in page.text and "ada@example.com" in page.text
    assert "You have no forms yet" in page.text
    assert "Welcome to Formwright" not in (await client.get("/forms")).text  # a flash shows once


async def test_sign_up_errors_are_inline_and_keep_the_email(client, owner, sessionmaker):
    r = await post_form(client, "/signup", {"email": "not-an-email", "password": "short"}, token_from="/signup")
    assert r.status_code == 422
    assert errors_in(r.text) == ["Enter an email address like name@example.com.", "Use at least 8 characters."]
    assert 'href="#f-email"' in r.text and 'value="not-an-email"' in r.text
    assert 'aria-describedby="f-password-help f-password-error"' in r.text
    r = await post_form(client, "/signup", {"email": owner.email.upper(), "password": "long enough pw"},
                        token_from="/signup")
    assert r.status_code == 422 and "already exists" in r.text
    assert await _count(sessionmaker, User) == 1 and await _count(sessionmaker, UserSession) == 0


async def test_log_in_wrong_password_then_right_then_log_out(client, owner, sessionmaker):
    r = await log_in(client, owner.email, "not my password")
    assert r.status_code == 422 and "The email or password is not right" in r.text
    assert "fw_session" not in set_cookies(r)
    assert f'value="{owner.email}"' in r.text  # kept; the password is never echoed back
    r = await log_in(client, "nobody@example.com", "whatever pw")
    assert r.status_code == 422 and "The email or password is not right" in r.text  # same message: no leak

    r = await log_in(client, owner.email, next_="/account/tokens")
    assert r.status_code == 303 and r.headers["location"] == "/account/tokens"
    assert (await client.get("/account/tokens")).status_code == 200

    token = await csrf_token(client, "/account")
    r = await client.post("/logout", data={"_csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "Max-Age=0" in set_cookies(r)["fw_session"]
    assert await _count(sessionmaker, UserSession) == 0
    r = await client.get("/forms", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/forms"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
async def test_login_never_redirects_off_site(client, owner, target):
    r = await log_in(client, owner.email, next_=target)
    assert r.status_code == 303 and r.headers["location"] == "/forms"


async def test_pages_need_a_login_and_htmx_gets_a_client_redirect(client):
    r = await client.get("/account?tab=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/account%3Ftab%3D1"
    r = await client.get("/forms", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.headers.get("hx-redirect", "").startswith("/login?next=")


async def test_expired_session_is_a_logged_out_visitor(client, owner, sessionmaker):
    await log_in(client, owner.email)
    async with sessionmaker() as s, s.begin():
        await s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await client.get("/forms", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_last_seen_is_written_at_most_once_a_minute(client, owner, sessionmaker):
    await log_in(client, owner.email)
    old = utcnow() - timedelta(minutes=5)
    async with sessionmaker() as s, s.begin():
        await s.execute(update(UserSession).values(last_seen_at=old))
    await client.get("/forms")
    async with sessionmaker() as s:
        first = await s.scalar(select(UserSession.last_seen_at))
    assert first > old + timedelta(minutes=4)
    await client.get("/forms")
    async with sessionmaker() as s:
        assert await s.scalar(select(UserSession.last_seen_at)) == first


# ---- throttling ------------------------------------------------------------------------------------

async def test_login_is_throttled_per_account(make_client, make_owner):
    client = await make_client(login_attempts_per_15min=2)
    victim, bystander = await make_owner(), await make_owner()
    for _ in range(2):
        assert (await log_in(client, victim.email, "guess guess")).status_code == 422
    r = await log_in(client, victim.email)  # even the right password waits now
    assert r.status_code == 429 and "Too many attempts; try again in 15 minutes." in r.text
    assert r.headers.get("retry-after")
    assert "fw_session" not in set_cookies(r)
    # The same address can still log in to another account (its allowance is larger).
    r = await log_in(client, bystander.email)
    assert r.status_code == 303


async def test_login_is_throttled_per_address(make_client, make_owner):
    client = await make_client(login_attempts_per_15min=1)  # an address gets 5 x 1 failures
    for n in range(5):  # five different accounts, one guess each: no account reaches its own limit
        assert (await log_in(client, f"guess{n}@example.com", "guess guess")).status_code == 422
    person = await make_owner()
    r = await log_in(client, person.email)  # never failed, right password, same address
    assert r.status_code == 429 and "Too many attempts" in r.text


async def test_successful_login_forgives_earlier_typos(make_client, make_owner):
    client = await make_client(login_attempts_per_15min=2)
    person = await make_owner()
    for _ in range(2):  # without forgiveness, the second typo would reach the limit of 2
        assert (await log_in(client, person.email, "typo typo")).status_code == 422
        assert (await log_in(client, person.email)).status_code == 303


# ---- CSRF ------------------------------------------------------------------------------------------

async def test_posts_without_a_valid_csrf_token_are_refused_with_a_clear_page(client, owner, sessionmaker,
                                                                             make_client):
    await csrf_token(client)  # the browser has the cookie, but the form lacks the field
    r = await client.post("/login", data={"email": owner.email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert "expired or was sent from another site" in r.text
    r = await client.post("/login", data={"_csrf_token": "0" * 128, "email": owner.email, "password": PASSWORD},
                          follow_redirects=False)
    assert r.status_code == 403
    fresh = await make_client()  # another browser: token of ours, cookie of nobody's
    token = await csrf_token(client)
    r = await fresh.post("/signup", data={"_csrf_token": token, "email": "x@example.com", "password": "p" * 10})
    assert r.status_code == 403
    assert await _count(sessionmaker, UserSession) == 0 and await _count(sessionmaker, User) == 1


async def test_htmx_posts_carry_the_token_in_a_header(client, owner, sessionmaker):
    await log_in(client, owner.email)
    page = await client.get("/forms")
    header = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([0-9a-f]+)\"\}'", page.text)
    assert header
    r = await client.post("/forms", data={"title": "Via htmx"}, headers={"HX-Request": "true"},
                          follow_redirects=False)
    assert r.status_code == 403
    r = await client.post("/forms", data={"title": "Via htmx"},
                          headers={"HX-Request": "true", "X-CSRFToken": header.group(1)}, follow_redirects=False)
    assert r.status_code == 200 and re.fullmatch(r"/forms/[0-9a-f-]{36}/edit", r.headers["hx-redirect"])
    assert await _count(sessionmaker, Form) == 1


async def test_token_api_and_reference_paths_need_no_csrf(client, owner):
    r = await client.post("/api/v1/forms", json={"title": "API"}, headers=owner.headers)
    assert r.status_code == 201
    r = await client.post("/form/create", json={"title": "Compat"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    assert (await client.get("/health")).status_code == 200
    r = await client.post("/api/v1/forms", content="{", headers={**owner.headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


async def test_production_cookies_are_secure(make_client):
    client = await make_client(base_url="https://testserver.local", env="production")
    r = await client.get("/signup")
    assert "Secure" in set_cookies(r)["fw_csrf"] and "HttpOnly" in set_cookies(r)["fw_csrf"]
    token = CSRF_RE.search(r.text).group(1)
    r = await client.post("/signup", data={"_csrf_token": token, "email": "sec@example.com", "password": "p" * 12},
                          follow_redirects=False)
    cookie = set_cookies(r)["fw_session"]
    assert r.status_code == 303
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


# ---- account: password ---------------------------------------------------------------------------

async def test_change_password_signs_out_other_sessions(client, owner, sessionmaker, make_client):
    await log_in(client, owner.email)
    laptop, phone = await make_client(), await make_client()
    await log_in(laptop, owner.email)
    assert (await laptop.get("/forms", follow_redirects=False)).status_code == 200
    r = await post_form(client, "/account/password", {"current": "wrong one", "new": "short", "confirm": "x"},
                        token_from="/account")
    assert r.status_code == 422
    assert errors_in(r.text) == ["Your current password is not right.", "Use at least 8 characters."]
    r = await post_form(client, "/account/password",
                        {"current": PASSWORD, "new": "brand new secret", "confirm": "brand new secrex"},
                        token_from="/account")
    assert r.status_code == 422 and errors_in(r.text) == ["The two new passwords do not match."]
    r = await post_form(client, "/account/password",
                        {"current": PASSWORD, "new": "brand new secret", "confirm": "brand new secret"},
                        token_from="/account")
    assert r.status_code == 303
    page = await client.get("/account")
    assert "Your password was changed. You were signed out on 1 other device." in page.text
    assert (await laptop.get("/forms", follow_redirects=False)).status_code == 303  # signed out there
    assert await _count(sessionmaker, UserSession) == 1
    assert (await log_in(phone, owner.email, PASSWORD)).status_code == 422
    assert (await log_in(phone, owner.email, "brand new secret")).status_code == 303


# ---- API tokens page ---------------------------------------------------------------------------------

async def test_tokens_are_shown_once_listed_by_prefix_and_revocable(client, owner, make_owner, make_client):
    await log_in(client, owner.email)
    r = await post_form(client, "/account/tokens", {"name": "Nightly export"}, token_from="/account/tokens")
    assert r.status_code == 201
    token = re.search(r'id="token-value" type="text" readonly value="(fw_[^"]+)"', r.text).group(1)
    assert "shown only once" in r.text
    assert (await client.get("/api/v1/forms", headers={"Authorization": f"Bearer {token}"})).status_code == 200

    listing = await client.get("/account/tokens")
    assert token not in listing.text and token[:11] in listing.text
    assert "Nightly export" in listing.text and "Active" in listing.text
    assert re.search(r"Nightly export.*?(just now|minute)", listing.text, re.S)  # last use shown

    r = await post_form(client, "/account/tokens", {"name": "   "}, token_from="/account/tokens")
    assert r.status_code == 422 and "Give the token a name" in r.text

    token_id = re.search(r'action="/account/tokens/([0-9a-f-]{36})/revoke"', listing.text).group(1)
    stranger = await make_owner()
    theirs = await make_client()
    await log_in(theirs, stranger.email)
    r = await post_form(theirs, f"/account/tokens/{token_id}/revoke", {}, token_from="/account/tokens")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert (await client.get("/api/v1/forms", headers={"Authorization": f"Bearer {token}"})).status_code == 200

    r = await post_form(client, f"/account/tokens/{token_id}/revoke", {}, token_from="/account/tokens")
    assert r.status_code == 303
    page = await client.get("/account/tokens")
    assert "The token “Nightly export” was revoked" in page.text and "Revoked" in page.text
    assert (await client.get("/api/v1/forms", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    r = await post_form(client, "/account/tokens/not-a-uuid/revoke", {}, token_from="/account/tokens")
    assert r.status_code == 404


# ---- dashboard -----------------------------------------------------------------------------------------

async def test_dashboard_lists_only_my_forms_with_status_counts_and_last_response(client, make_owner):
    me, them = await make_owner(), await make_owner()
    mine = await api_form(client, me, title="Customer feedback", status="open",
                          questions=[{"text": "Name"}])
    await api_form(client, me, title="Draft idea")
    await api_form(client, them, title="Their secret form", status="open")
    for name in ("A", "B"):
        r = await client.post(f"/api/v1/forms/{mine['id']}/responses",
                              json={"answers": {mine["questions"][0]["id"]: name}})
        assert r.status_code == 201
    await log_in(client, me.email)
    page = (await client.get("/forms")).text
    assert "Their secret form" not in page
    rows = dict(re.findall(r'<a class="table__title" href="/forms/[^"]+">(.*?)</a>.*?<td class="num">.*?>(\d+)</a>',
                           page, re.S))
    assert rows == {"Customer feedback": "2", "Draft idea": "0"}
    assert re.search(r"Customer feedback.*?badge--open.*?just now", page, re.S)
    assert re.search(r"Draft idea.*?badge--draft.*?None yet", page, re.S)

    found = await client.get("/forms", params={"q": "FEEDBACK"})
    assert "Customer feedback" in found.text and "Draft idea" not in found.text
    none = await client.get("/forms", params={"q": "secret"})
    assert "No forms match" in none.text and "Their secret form" not in none.text
    fragment = await client.get("/forms", params={"q": "draft"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "Draft idea" in fragment.text


async def test_create_form_from_the_dashboard(client, owner, sessionmaker):
    await log_in(client, owner.email)
    r = await post_form(client, "/forms", {"title": "   "}, token_from="/forms")
    assert r.status_code == 422 and "Give the form a title" in r.text
    r = await post_form(client, "/forms", {"title": "x" * 201}, token_from="/forms")
    assert r.status_code == 422 and "at most 200 characters" in r.text
    assert await _count(sessionmaker, Form) == 0
    r = await post_form(client, "/forms", {"title": "Event sign-up"}, token_from="/forms")
    assert r.status_code == 303
    async with sessionmaker() as s:
        form = await s.scalar(select(Form))
    assert r.headers["location"] == f"/forms/{form.id}/edit"
    assert form.title == "Event sign-up" and form.status == "draft" and form.owner_id == owner.id


async def test_duplicate_copies_questions_as_a_new_draft(client, owner, sessionmaker):
    original = await api_form(client, owner, title="Quiz", status="open", confirmation_message="Bye",
                              questions=[{"text": "Pick", "kind": "single_choice", "options": ["A", "B"]},
                                         {"text": "Rate", "kind": "rating", "constraints": {"scale": 7}}])
    await client.post(f"/api/v1/forms/{original['id']}/responses", json={"answers": {}})
    await log_in(client, owner.email)
    r = await post_form(client, f"/forms/{original['id']}/duplicate", {}, token_from="/forms")
    assert r.status_code == 303
    assert "Created “Copy of Quiz” as a draft" in (await client.get("/forms")).text
    async with sessionmaker() as s:
        copy = await s.scalar(select(Form).where(Form.title == "Copy of Quiz"))
        questions = list(await s.scalars(select(Question).where(Question.form_id == copy.id)
                                         .order_by(Question.position)))
        responses = await s.scalar(select(func.count()).select_from(Response).where(Response.form_id == copy.id))
    assert copy.status == "draft" and copy.slug != original["slug"] and copy.confirmation_message == "Bye"
    assert [(q.text, q.options, q.constraints) for q in questions] == [("Pick", ["A", "B"], {}),
                                                                        ("Rate", [], {"scale": 7})]
    assert responses == 0


async def test_delete_confirms_what_is_lost_then_deletes(client, owner, sessionmaker):
    form = await api_form(client, owner, title="Old poll", status="open",
                          questions=[{"text": "Q1"}, {"text": "Q2"}, {"text": "Q3"}])
    for _ in range(2):
        await client.post(f"/api/v1/forms/{form['id']}/responses", json={"answers": {}})
    await log_in(client, owner.email)
    page = await client.get(f"/forms/{form['id']}/delete")
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", "", page.text)
    assert "Delete “Old poll”?" in text and "3 questions" in text and "2 responses" in text
    assert "cannot be undone" in text
    assert await _count(sessionmaker, Form) == 1  # looking is harmless
    r = await post_form(client, f"/forms/{form['id']}/delete", {}, token_from="/forms")
    assert r.status_code == 303
    assert "Deleted “Old poll”" in (await client.get("/forms")).text
    assert await _count(sessionmaker, Form) == 0 and await _count(sessionmaker, Response) == 0


async def test_other_peoples_forms_are_404_on_every_dashboard_action(client, make_owner, sessionmaker):
    me, them = await make_owner(), await make_owner()
    theirs = await api_form(client, them, title="Not yours", questions=[{"text": "Q"}])
    await log_in(client, me.email)
    fid = theirs["id"]
    assert (await client.get(f"/forms/{fid}/delete")).status_code == 404
    for action in ("delete", "duplicate"):
        r = await post_form(client, f"/forms/{fid}/{action}", {}, token_from="/forms")
        assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert (await client.get("/forms/not-a-uuid/delete")).status_code == 404
    # Through htmx: nothing is swapped, and the page is told what happened (a toast).
    page = await client.get("/forms")
    header = re.search(r'"X-CSRFToken": "([0-9a-f]+)"', page.text).group(1)
    r = await client.post(f"/forms/{fid}/duplicate", headers={"HX-Request": "true", "X-CSRFToken": header})
    assert r.status_code == 404 and r.headers["hx-reswap"] == "none"
    assert json.loads(r.headers["hx-trigger"]) == {"fw:flash": {"kind": "error", "text": "Form not found."}}
    assert await _count(sessionmaker, Form) == 1
