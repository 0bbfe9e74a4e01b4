"""Account pages: sign up, log in, log out, change password, API tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import Provide
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts import service, sessions, throttle
from webapp.accounts.models import User
from webapp.accounts.security import hash_password, verify_password
from webapp.errors import ProblemError
from webapp.web import (
    client_ip,
    error_items,
    field_errors,
    form_data,
    parse_id,
    provide_optional_page_user,
    provide_page_user,
    redirect,
    render,
    safe_next,
    settings_of,
)

page_user = {"user": Provide(provide_page_user)}
optional_user = {"user": Provide(provide_optional_page_user)}

# Verifying against a real hash when the email is unknown keeps the response time the same,
# so timing does not reveal which emails have accounts.
_DUMMY_HASH = hash_password("not-a-real-password-just-for-timing")
LOGIN_FAILED = "The email or password is not right. Check both and try again."


def _field(data: Any, name: str, limit: int = 1000) -> str:
    value = data.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _login_response(request: Request, user_token: str, target: str, message: str) -> Response[Any]:
    settings = settings_of(request)
    return redirect(request, target, flash=message, cookies=[sessions.session_cookie(settings, user_token)])


# ---- landing, sign up, log in, log out -----------------------------------------------------------

@get("/", dependencies=optional_user, name="home")
async def home(request: Request, user: User | None) -> Any:
    if user is not None:
        return redirect(request, "/forms")
    return render(request, "accounts/landing.html")


@get("/signup", dependencies=optional_user, name="signup")
async def signup_page(request: Request, user: User | None) -> Any:
    if user is not None:
        return redirect(request, "/forms")
    return render(request, "accounts/signup.html", values={}, errors={})


@post("/signup", name="signup_submit")
async def signup(request: Request, db_session: AsyncSession) -> Any:
    data = await form_data(request)
    email, password = _field(data, "email", 400), _field(data, "password")
    errors: dict[str, str] = {}
    try:
        service.check_email(email)
    except ProblemError:
        errors["email"] = "Enter an email address like name@example.com."
    try:
        service.check_password(password)
    except ProblemError as exc:
        errors["password"] = field_errors(exc).get("password", exc.detail)
    if not errors and await service.get_user_by_email(db_session, email) is not None:
        errors["email"] = "An account with this email already exists. Log in instead, or use another email."
    if errors:
        return render(request, "accounts/signup.html", status_code=422, values={"email": email}, errors=errors,
                      summary=error_items(errors))
    try:
        user = await service.create_user(db_session, email, password)
    except ProblemError:  # lost a race with another sign-up for the same email
        errors["email"] = "An account with this email already exists. Log in instead, or use another email."
        return render(request, "accounts/signup.html", status_code=422, values={"email": email}, errors=errors,
                      summary=error_items(errors))
    token = await sessions.start_session(db_session, settings_of(request), user, ip=client_ip(request),
                                         user_agent=request.headers.get("user-agent"))
    return _login_response(request, token, "/forms", "Welcome to Formwright! Create your first form below.")


@get("/login", dependencies=optional_user, name="login")
async def login_page(request: Request, user: User | None, next: str | None = None) -> Any:
    target = safe_next(next)
    if user is not None:
        return redirect(request, target)
    return render(request, "accounts/login.html", values={}, errors={}, next=target)


@post("/login", name="login_submit")
async def login(request: Request, db_session: AsyncSession) -> Any:
    data = await form_data(request)
    email, password = _field(data, "email", 400).strip(), _field(data, "password")
    target = safe_next(_field(data, "next"))
    settings = settings_of(request)
    ip = client_ip(request)

    def again(status: int, message: str, errors: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> Any:
        errors = errors or {}
        return render(request, "accounts/login.html", status_code=status, values={"email": email}, errors=errors,
                      summary=error_items(errors) if errors else [{"href": "#f-email", "text": message}],
                      next=target, headers=headers)

    missing = {k: f"Enter your {k}." for k, v in (("email", email), ("password", password)) if not v}
    if missing:
        return again(422, "", missing)
    try:
        await throttle.check_login(db_session, email, ip, settings.login_attempts_per_15min)
    except throttle.Throttled as exc:
        return again(429, str(exc), headers={"Retry-After": str(exc.minutes * 60)})
    user = await service.get_user_by_email(db_session, email)
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        await throttle.record_failure(db_session, email, ip)
        # An error page rolls the transaction back; the failed attempt must still count.
        await db_session.commit()
        return again(422, LOGIN_FAILED)
    await throttle.clear_account(db_session, email)
    token = await sessions.start_session(db_session, settings, user, ip=ip,
                                         user_agent=request.headers.get("user-agent"))
    return _login_response(request, token, target, "You're logged in.")


@post("/logout", name="logout")
async def logout(request: Request, db_session: AsyncSession) -> Any:
    await sessions.end_session(db_session, request.cookies.get(sessions.SESSION_COOKIE))
    return redirect(request, "/login", flash="You're logged out. See you soon.", kind="info",
                    cookies=[sessions.cleared_session_cookie(settings_of(request))])


# ---- account: password ---------------------------------------------------------------------------

async def _account_page(request: Request, db_session: AsyncSession, user: User, *, status: int = 200,
                        errors: dict[str, str] | None = None) -> Any:
    errors = errors or {}
    return render(request, "accounts/account.html", status_code=status, user=user, errors=errors,
                  summary=error_items(errors), session_count=await sessions.count_sessions(db_session, user.id))


@get("/account", dependencies=page_user, name="account")
async def account_page(request: Request, db_session: AsyncSession, user: User) -> Any:
    return await _account_page(request, db_session, user)


@post("/account/password", dependencies=page_user, name="change_password")
async def change_password(request: Request, db_session: AsyncSession, user: User) -> Any:
    data = await form_data(request)
    current, new, confirm = _field(data, "current"), _field(data, "new"), _field(data, "confirm")
    errors: dict[str, str] = {}
    if not current:
        errors["current"] = "Enter your current password."
    elif not await asyncio.to_thread(verify_password, user.password_hash, current):
        errors["current"] = "Your current password is not right."
    try:
        service.check_password(new)
    except ProblemError as exc:
        errors["new"] = field_errors(exc).get("password", exc.detail)
    if "new" not in errors and new != confirm:
        errors["confirm"] = "The two new passwords do not match."
    if errors:
        return await _account_page(request, db_session, user, status=422, errors=errors)
    password_hash = await asyncio.to_thread(hash_password, new)
    await db_session.execute(update(User).where(User.id == user.id).values(password_hash=password_hash))
    ended = await sessions.revoke_other_sessions(db_session, user.id, keep=request.state.session_id)
    note = f" You were signed out on {ended} other device{'s' if ended != 1 else ''}." if ended else ""
    return redirect(request, "/account", flash="Your password was changed." + note)


# ---- API tokens ----------------------------------------------------------------------------------

async def _tokens_page(request: Request, db_session: AsyncSession, user: User, *, status: int = 200,
                       new_token: str | None = None, new_name: str = "", errors: dict[str, str] | None = None,
                       name_value: str = "") -> Any:
    errors = errors or {}
    tokens = await service.list_tokens(db_session, user.id)
    return render(request, "accounts/tokens.html", status_code=status, tokens=tokens, new_token=new_token,
                  new_name=new_name, errors=errors, summary=error_items(errors), values={"name": name_value})


@get("/account/tokens", dependencies=page_user, name="tokens")
async def tokens_page(request: Request, db_session: AsyncSession, user: User) -> Any:
    return await _tokens_page(request, db_session, user)


@post("/account/tokens", dependencies=page_user, name="create_token")
async def create_token(request: Request, db_session: AsyncSession, user: User) -> Any:
    data = await form_data(request)
    name = _field(data, "name", 400)
    try:
        token, plaintext = await service.create_token(db_session, user, name)
    except ProblemError as exc:
        return await _tokens_page(request, db_session, user, status=422, name_value=name,
                                  errors={"name": field_errors(exc).get("name", exc.detail)})
    # Shown in this response only: it is never stored in clear, so there is no page to come back to.
    return await _tokens_page(request, db_session, user, status=201, new_token=plaintext, new_name=token.name)


@post("/account/tokens/{token_id:str}/revoke", dependencies=page_user, name="revoke_token")
async def revoke_token(request: Request, db_session: AsyncSession, user: User, token_id: str) -> Any:
    token = await service.revoke_token(db_session, user.id, parse_id(token_id, "API token"))
    return redirect(request, "/account/tokens", flash=f"The token “{token.name}” was revoked; it no longer works.")


account_pages = [home, signup_page, signup, login_page, login, logout, account_page, change_password,
                 tokens_page, create_token, revoke_token]
