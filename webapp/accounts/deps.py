"""Who is calling: the bearer-token dependency for owner operations."""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import User
from webapp.accounts.service import user_for_token
from webapp.errors import ProblemError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="formwright"'}


def _bearer(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ProblemError(401, "The Authorization header must be 'Bearer <token>'.", headers=_CHALLENGE)
    return credentials.strip()


async def provide_optional_user(request: Request[Any, Any, Any], db_session: AsyncSession) -> User | None:
    """The caller's user when a token is sent (a bad token is still a 401), else None."""
    token = _bearer(request)
    if token is None:
        return None
    user = await user_for_token(db_session, token)
    if user is None:
        raise ProblemError(401, "The API token is unknown or has been revoked.", headers=_CHALLENGE)
    return user


async def provide_user(request: Request[Any, Any, Any], db_session: AsyncSession) -> User:
    user = await provide_optional_user(request, db_session)
    if user is None:
        raise ProblemError(401, "This endpoint needs an API token: send 'Authorization: Bearer <token>'.",
                           headers=_CHALLENGE)
    return user
