"""Browser sessions in `user_sessions`: a random token in an HttpOnly cookie, only its sha256 stored."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from litestar.datastructures import Cookie
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import User, UserSession
from webapp.accounts.security import hash_token
from webapp.settings import Settings
from webapp.timeutil import utcnow

SESSION_COOKIE = "fw_session"
# Writing last_seen_at on every page view would turn each read into a write.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CurrentSession:
    id: UUID
    user: User


def cookie_secure(settings: Settings) -> bool:
    """Secure cookies in production; development and the test-suite run over plain http."""
    return settings.env not in {"development", "test"}


def session_cookie(settings: Settings, token: str) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, path="/", httponly=True, samesite="lax",
                  secure=cookie_secure(settings), max_age=settings.session_days * 86400)


def cleared_session_cookie(settings: Settings) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value="", path="/", httponly=True, samesite="lax",
                  secure=cookie_secure(settings), max_age=0)


async def start_session(
    db: AsyncSession, settings: Settings, user: User, *, ip: str | None, user_agent: str | None
) -> str:
    """Create a session for this user and return the cookie value (shown to nobody else)."""
    now = utcnow()
    # Housekeeping that costs nothing on the hot path: drop this user's expired sessions at login.
    await db.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    db.add(UserSession(
        user_id=user.id, token_hash=hash_token(token), created_at=now, last_seen_at=now,
        expires_at=now + timedelta(days=settings.session_days),
        ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:300] or None,
    ))
    await db.flush()
    return token


async def session_for_token(db: AsyncSession, token: str | None) -> CurrentSession | None:
    """The live session behind a cookie value, or None (unknown, expired or malformed)."""
    if not token or len(token) > 200:
        return None
    row = await db.scalar(select(UserSession).where(UserSession.token_hash == hash_token(token)))
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        await db.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
    return CurrentSession(row.id, row.user)


async def end_session(db: AsyncSession, token: str | None) -> None:
    if token:
        await db.execute(delete(UserSession).where(UserSession.token_hash == hash_token(token)))


async def revoke_other_sessions(db: AsyncSession, user_id: UUID, keep: UUID | None) -> int:
    """Sign the user out everywhere else (after a password change). Returns how many ended."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep)
    result = await db.execute(stmt)
    return result.rowcount or 0


async def count_sessions(db: AsyncSession, user_id: UUID) -> int:
    rows = await db.scalars(select(UserSession.id).where(UserSession.user_id == user_id,
                                                         UserSession.expires_at > utcnow()))
    return len(list(rows))
