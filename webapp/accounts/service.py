"""Users and API tokens: the rules live here, controllers and the CLI call them."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from webapp.accounts.models import ApiToken, User
from webapp.accounts.security import hash_password, hash_token, new_token
from webapp.db import as_uuid, fetch_one
from webapp.errors import ProblemError, not_found
from webapp.timeutil import as_utc, utcnow

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
# Writing last_used_at on every request would make each read a write; once a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalise_email(email)
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise ProblemError(422, f"{email!r} is not a valid email address.",
                           errors=[{"field": "email", "message": "Enter a valid email address."}])
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ProblemError(422, f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
                           errors=[{"field": "password",
                                    "message": f"Use at least {MIN_PASSWORD_LENGTH} characters."}])


async def create_user(session: AsyncSession, email: str, password: str) -> User:
    email = check_email(email)
    check_password(password)
    if await get_user_by_email(session, email) is not None:
        raise ProblemError(409, f"A user with the email {email} already exists.")
    # Argon2 is deliberately slow: hash in a thread so other requests keep flowing.
    user = User(email=email, password_hash=await asyncio.to_thread(hash_password, password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise ProblemError(409, f"A user with the email {email} already exists.") from None
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalise_email(email)))


async def create_token(session: AsyncSession, user: User, name: str) -> tuple[ApiToken, str]:
    name = name.strip()
    if not name or len(name) > 100:
        raise ProblemError(422, "A token name must be 1 to 100 characters.",
                           errors=[{"field": "name", "message": "Give the token a name of 1 to 100 characters."}])
    plaintext, digest, prefix = new_token()
    token = ApiToken(user_id=user.id, name=name, token_hash=digest, prefix=prefix)
    session.add(token)
    await session.flush()
    return token, plaintext


async def list_tokens(session: AsyncSession, user_id: UUID) -> list[ApiToken]:
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
    )
    return list(rows)


async def revoke_token(session: AsyncSession, user_id: UUID, token_id: UUID) -> ApiToken:
    token = await session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    if token is None:
        raise not_found("API token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    return token


# Every API call checks its token: one prepared statement, no ORM query and no transaction.
_CALLER_SQL = ("SELECT t.id, t.revoked_at, t.last_used_at, u.id, u.email, u.password_hash, u.created_at, "
               "u.updated_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1")
_TOUCH_SQL = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 RETURNING id"


async def user_for_token(session: AsyncSession, plaintext: str) -> User | None:
    """The token's user (detached: loaded outside the session), or None if unknown or revoked."""
    row = await fetch_one(session, _CALLER_SQL, hash_token(plaintext))
    if row is None or row[1] is not None:
        return None
    now = utcnow()
    if row[2] is None or now - as_utc(row[2]) > LAST_USED_RESOLUTION:
        await fetch_one(session, _TOUCH_SQL, as_uuid(row[0]), now)
    user = User(id=as_uuid(row[3]), email=row[4], password_hash=row[5], created_at=as_utc(row[6]),
                updated_at=as_utc(row[7]))
    make_transient_to_detached(user)  # a stored user: adding it to a session must not insert it
    return user
