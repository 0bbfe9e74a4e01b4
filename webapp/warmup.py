"""Get a fresh web process ready before it takes traffic, and keep the garbage collector's pauses
out of request latency.

A cold process answered its first requests slowly: the first submission loaded every installed
integration (importing gspread, google-auth and twilio: about 150 ms with the event loop blocked,
400 ms under load), the first phone answer loaded phone-number metadata (under load the first 10 s
of a fresh server had p99 ≈ 190 ms against ≈ 45 ms once warm; bench/). Only one database
connection is opened: a process that opened its whole pool at start would, times every worker,
relay and integration process, hold connections it may never need.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import phonenumbers
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from webapp.plugins import load_integrations
from webapp.settings import Settings

log = structlog.get_logger("webapp.warmup")


def freeze_startup_heap() -> None:
    """Collect once, then freeze what startup loaded.

    Modules, routes, templates and metadata live for the whole process; left in the collected
    generations, every full collection walks them all again, and those pauses were the slowest 1 %
    of requests under load (form definition p99 84 ms → 18 ms; bench/)."""
    gc.collect()
    gc.freeze()


def warm_up(settings: Settings, engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """The startup hook. A database that is down only costs the warm-up: /ready reports it."""

    async def hook() -> None:
        load_integrations()
        phonenumbers.parse("+12025550143", settings.default_phone_region)
        try:
            async with asyncio.timeout(10), engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            log.warning("warmup_database_unavailable", error=type(exc).__name__)
        if settings.env != "test":  # the test suite builds an app per test: frozen, none would be freed
            freeze_startup_heap()

    return hook
