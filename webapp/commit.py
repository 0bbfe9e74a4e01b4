"""The request's transaction ends before its response starts, and a failed commit is not a success.

advanced-alchemy's `autocommit_include_redirects` handler commits when a 2xx/3xx response starts,
but it logs a failed commit at debug level and lets the success go out: a respondent would read
"Thank you" for an answer that was never stored. This handler answers 503 problem+json instead
(nothing was saved; retry), in place of the response that was about to start.

It also skips the commit of a session that never began a transaction (the reads and fast-path
writes that go to the driver directly): that empty commit cost 5 % of a definition request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from advanced_alchemy.extensions.litestar._utils import delete_aa_scope_state, get_aa_scope_state
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger("webapp.db")

_FAILED = "_formwright_commit_failed"
_DETAIL = "Your change could not be saved; nothing was stored. Please retry."
_BODIES = {  # problem details for the API, a page for browsers
    "json": (b"application/problem+json", msgspec.json.encode(
        {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": _DETAIL})),
    "html": (b"text/html; charset=utf-8", (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Not saved</title><h1>Not saved</h1>"
        f"<p>{_DETAIL} Go back to the page to send it again.</p></html>").encode()),
}
_KEPT = frozenset({b"x-request-id"})


def commit_before_send(session_scope_key: str) -> Callable[[Any, Any], Awaitable[None]]:
    """A Litestar `before_send` hook for the session stored under `session_scope_key` (each
    advanced-alchemy config gets its own key): commit on 2xx/3xx, roll back otherwise, close."""

    async def handler(message: Any, scope: Any) -> None:
        if message["type"] == "http.response.body":
            if scope.get(_FAILED):  # the original body must not follow the 503's start
                state = scope.pop(_FAILED)
                message["body"] = _BODIES[state][1] if state in _BODIES else b""
                if message.get("more_body"):
                    scope[_FAILED] = "sent"
            return
        session: AsyncSession | None = get_aa_scope_state(scope, session_scope_key)
        if session is None:
            return
        try:
            if message["type"] == "http.response.start" and session.in_transaction():
                if 200 <= message["status"] < 400:
                    await _commit_or_refuse(session, message, scope)
                else:
                    await _quiet_rollback(session)
        finally:
            if message["type"] in ("http.response.start", "http.disconnect"):
                await session.close()
                delete_aa_scope_state(scope, session_scope_key)

    return handler


async def _commit_or_refuse(session: AsyncSession, message: Any, scope: Any) -> None:
    try:
        await session.commit()
    except Exception as exc:  # any failure means nothing was stored
        log.error("commit_failed", path=scope.get("path"), status=message["status"], error=type(exc).__name__)
        await _quiet_rollback(session)
        accept = next((v for k, v in scope.get("headers", []) if k == b"accept"), b"")
        kind = "html" if b"text/html" in accept else "json"
        content_type, body = _BODIES[kind]
        kept = [(k, v) for k, v in message.get("headers", []) if k.lower() in _KEPT]
        message["status"] = 503
        message["headers"] = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                              (b"retry-after", b"1"), (b"cache-control", b"no-store"), *kept]
        scope[_FAILED] = kind


async def _quiet_rollback(session: AsyncSession) -> None:
    try:
        await session.rollback()
    except Exception:  # a broken connection is discarded by the pool anyway
        log.warning("rollback_failed")
