"""Liveness and readiness.

/health answers while the process can serve at all: no dependency is checked, so a database
outage never gets every pod restarted. /ready says whether this process should receive traffic:
the database answers a query and, when AMQP_URL is set, the broker accepts a connection. Each
check has a short timeout so the answer comes before the prober gives up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from litestar import Request, Response, get
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from webapp.errors import PROBLEM_MEDIA_TYPE
from webapp.settings import Settings

log = structlog.get_logger("webapp.health")

CHECK_TIMEOUT = 2.0  # each check; probes should allow at least 3 seconds


@get("/health", summary="Liveness: the process is up", tags=["ops"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _reason(exc: BaseException) -> str:
    """A short cause that names the failure but carries no URL or password."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g} s"
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {message}"[:200] if message else type(cause).__name__


async def _check_database(engine: AsyncEngine) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _reason(exc)
    return None


async def _check_broker(url: str) -> str | None:
    import aiormq

    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            connection = await aiormq.connect(url)
            await connection.close()
    except Exception as exc:
        return _reason(exc)
    return None


@get("/ready", summary="Readiness: the database (and the broker, when configured) answer", tags=["ops"])
async def ready(request: Request, db_engine: AsyncEngine) -> Response[dict[str, Any]]:
    settings: Settings = request.app.state.settings
    checks: dict[str, Any] = {"database": _check_database(db_engine)}
    if settings.amqp_url:
        checks["broker"] = _check_broker(settings.amqp_url)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    failures = {name: reason for name, reason in results.items() if reason is not None}
    if not failures:
        return Response({"status": "ready", "checks": dict.fromkeys(results, "ok")})
    log.warning("not_ready", **failures)
    detail = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
    body = {"type": "about:blank", "title": "Not ready", "status": 503, "detail": detail,
            "checks": {name: reason or "ok" for name, reason in results.items()}}
    return Response(body, status_code=503, media_type=PROBLEM_MEDIA_TYPE)


ops_handlers = [health, ready]
