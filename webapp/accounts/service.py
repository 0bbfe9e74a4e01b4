"""Users and API tokens: the rules live here, controllers and the CLI call them."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import ApiToken, User
from webapp.accounts.security import hash_password, hash_token, new_token
from webapp.errors import ProblemError, not_found
from webapp.timeutil import utcnow

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


async def user_for_token(session: AsyncSession, plaintext: str) -> User | None:
    token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return token.user
