"""Engine and session configuration for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from advanced_alchemy.base import UUIDv7Base, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from webapp.commit import commit_before_send
from webapp.settings import ROOT, Settings

__all__ = ("Base", "as_uuid", "closing_engine", "create_engine", "fetch_all", "fetch_one", "metadata", "sqlalchemy_config")

# Time-ordered UUIDv7 keys keep inserts at the right edge of every index.
Base = UUIDv7Base
metadata = orm_registry.metadata


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def create_engine(settings: Settings, *, pool: bool = True, server_settings: dict[str, str] | None = None) -> AsyncEngine:
    """One place that knows how to open each database with the right options.

    `server_settings` are PostgreSQL settings for every connection of this engine (ignored on SQLite)."""
    url = settings.database_url
    # msgspec reads and writes JSON columns several times faster than the json module.
    kwargs: dict[str, Any] = {"echo": settings.db_echo, "json_serializer": _json_dumps,
                              "json_deserializer": msgspec.json.decode}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 10}
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if pool:
        # A fixed-size pool: requests beyond DB_POOL_SIZE wait for a connection (up to
        # DB_POOL_TIMEOUT_SECONDS, then 503). Overflow connections would be opened and closed per
        # request under sustained load, and that connect cost halved throughput (see bench/).
        # No pre-ping: it costs a round trip (BEGIN; ;) on every checkout. A connection broken by a
        # database restart is detected on use and the pool is refreshed.
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=0, pool_timeout=settings.db_pool_timeout,
                      pool_recycle=1800)
    else:
        kwargs["poolclass"] = NullPool
    kwargs["connect_args"] = {"server_settings": {"application_name": "formwright", **(server_settings or {})}}
    return create_async_engine(url, **kwargs)


def sqlalchemy_config(settings: Settings, engine: AsyncEngine | None = None) -> SQLAlchemyAsyncConfig:
    config = SQLAlchemyAsyncConfig(
        engine_instance=engine or create_engine(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        alembic_config=AlembicAsyncConfig(
            script_config=str(ROOT / "migrations" / "alembic.ini"),
            script_location=str(ROOT / "migrations"),
            render_as_batch=True,
            compare_type=True,
        ),
        create_all=False,
    )
    # 2xx/3xx commit, and a failed commit answers 503 (webapp/commit.py). Set after construction:
    # the config picks its own session key then (unique per app in one process).
    config.before_send_handler = commit_before_send(config.session_scope_key)
    return config


def closing_engine(engine: AsyncEngine) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """An app lifespan hook, listed first so it ends last: close the pool's connections on shutdown.

    (advanced-alchemy's plugin looks for its engine under another state key than it stores it
    under, so it never disposes it; a process that builds many apps, like the test suite, then
    kept every pool's connections open until the database refused new ones.)"""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    return lifespan


async def fetch_one(session: AsyncSession, sql: str, *params: Any) -> Any:
    """`fetch_all`'s first row, or None. A write (UPDATE … RETURNING) outside a transaction commits at once."""
    rows = await fetch_all(session, sql, *params)
    return rows[0] if rows else None


async def fetch_all(session: AsyncSession, sql: str, *params: Any) -> list[Any]:
    """Rows of one statement, on the driver directly where it pays off (no ORM row processing).

    On PostgreSQL it is a prepared asyncpg statement. Inside the session's transaction it runs
    there; outside one it runs on a pooled connection in autocommit, so a read that needs no
    transaction costs no BEGIN/COMMIT round trips. `sql` uses $1, $2… placeholders and may use
    `= ANY($1)` for lists. On SQLite the placeholders become ? and list parameters are expanded in
    place, and the statement joins the session's transaction.
    """
    if session.bind.dialect.name == "postgresql":
        if session.in_transaction():
            return await _pg_fetch(await session.connection(), sql, params)
        async with session.bind.connect() as conn:
            return await _pg_fetch(conn, sql, params)
    conn = await session.connection()
    args: list[Any] = []

    def expand(match: re.Match[str]) -> str:
        value = params[int(match.group(1)) - 1]
        if isinstance(value, list | tuple):
            args.extend(_sqlite_param(v) for v in value)
            return "(" + ", ".join("?" * len(value)) + ")" if value else "(NULL)"
        args.append(_sqlite_param(value))
        return "?"

    stmt = re.sub(r"= ANY\(\$(\d+)\)", lambda m: "IN " + expand(m), sql)
    stmt = re.sub(r"\$(\d+)", expand, stmt)
    return list((await conn.exec_driver_sql(stmt, tuple(args))).all())


async def _pg_fetch(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    raw = (await conn.get_raw_connection()).driver_connection
    return list(await raw.fetch(sql, *params))


def as_uuid(value: UUID | bytes) -> UUID:
    """A plain UUID from what a raw read returns (asyncpg's own UUID type, SQLite's 16 bytes)."""
    return UUID(bytes=value) if isinstance(value, bytes) else UUID(int=value.int)


def _sqlite_param(value: Any) -> Any:
    # The embedded SQLite schema stores UUIDs as 16 raw bytes (advanced-alchemy's GUID).
    return value.bytes if isinstance(value, UUID) else value
