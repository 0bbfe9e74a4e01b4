"""Engine and session configuration for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advanced_alchemy.base import UUIDv7Base, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from webapp.settings import ROOT, Settings

__all__ = ("Base", "create_engine", "metadata", "sqlalchemy_config")

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


def create_engine(settings: Settings, *, pool: bool = True) -> AsyncEngine:
    """One place that knows how to open each database with the right options."""
    url = settings.database_url
    kwargs: dict[str, Any] = {"echo": settings.db_echo}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 10}
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if pool:
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size, pool_pre_ping=True)
    else:
        kwargs["poolclass"] = NullPool
    kwargs["connect_args"] = {"server_settings": {"application_name": "formwright"}}
    return create_async_engine(url, **kwargs)


def sqlalchemy_config(settings: Settings, engine: AsyncEngine | None = None) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        engine_instance=engine or create_engine(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        before_send_handler="autocommit_include_redirects",
        alembic_config=AlembicAsyncConfig(
            script_config=str(ROOT / "migrations" / "alembic.ini"),
            script_location=str(ROOT / "migrations"),
            render_as_batch=True,
            compare_type=True,
        ),
        create_all=False,
    )
