"""Throwaway databases for the test-suite: create, migrate with Alembic, empty, drop.

    url = await create_database("postgres")   # or "sqlite"
    await aupgrade(url)                        # alembic upgrade head, in a worker thread
    engine = create_engine(dataclasses.replace(Settings.from_env(), database_url=url))
    ...
    await truncate_all(engine)                 # between tests
    await engine.dispose()
    await drop_database(url)

The PostgreSQL server comes from TEST_DATABASE_URL (default
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); databases are created through the database
that URL names and are called fw_test_<pid>_<random>. `drop_database` refuses any other name.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from webapp.db import metadata
from webapp.settings import ROOT, normalise_database_url

__all__ = (
    "ALEMBIC_INI",
    "DB_PREFIX",
    "acheck",
    "adowngrade",
    "alembic_config",
    "aupgrade",
    "check",
    "create_database",
    "downgrade",
    "drop_database",
    "server_url",
    "truncate_all",
    "upgrade",
)

ALEMBIC_INI = ROOT / "migrations" / "alembic.ini"
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "fw_test_"
BACKENDS = ("sqlite", "postgres")

# alembic's `context`/`op` are process-wide proxies: two commands at once would trample each other.
_alembic_lock = threading.Lock()


def server_url() -> URL:
    """The PostgreSQL server (and the database used to create others) the tests run against."""
    raw = os.environ.get("TEST_DATABASE_URL", "").strip() or DEFAULT_TEST_DATABASE_URL
    url = make_url(normalise_database_url(raw))
    return url if url.database else url.set(database="postgres")


def _admin_engine(url: URL) -> AsyncEngine:
    return create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(backend: str) -> str:
    """Create an empty database and return its async SQLAlchemy URL (as a string)."""
    if backend == "sqlite":
        directory = await asyncio.to_thread(tempfile.mkdtemp, prefix=DB_PREFIX)
        return f"sqlite+aiosqlite:///{Path(directory) / 'formwright.db'}"
    if backend == "postgres":
        server = server_url()
        name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        engine = _admin_engine(server)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f"CREATE DATABASE {_quote(name)}"))
        finally:
            await engine.dispose()
        return server.set(database=name).render_as_string(hide_password=False)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


async def drop_database(url: str) -> None:
    """Drop a database made by `create_database` (PostgreSQL: even with sessions still open)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        directory = path.parent
        if not directory.name.startswith(DB_PREFIX):
            raise ValueError(f"refusing to delete {path}: not made by create_database")
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)  # db, -wal, -shm, -journal
        return
    name = parsed.database or ""
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop database {name!r}: not made by create_database")
    admin = parsed.set(database=server_url().database)
    engine = _admin_engine(admin)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
    finally:
        await engine.dispose()


def alembic_config(url: str, *, script_location: str | Path | None = None) -> Config:
    """A plain alembic Config for migrations/ aimed at `url` (env.py reads attributes["db_url"]).

    `script_location` points it at another copy of migrations/ (tests that add scratch revisions).
    """
    config = Config(str(ALEMBIC_INI))
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    # An attribute rather than the `sqlalchemy.url` option: ConfigParser would choke on a % in a password.
    config.attributes["db_url"] = url
    return config


def upgrade(url: str, revision: str = "head", *, script_location: str | Path | None = None) -> None:
    """alembic upgrade. Sync, and env.py calls asyncio.run(): from async code use `aupgrade`."""
    with _alembic_lock:
        command.upgrade(alembic_config(url, script_location=script_location), revision)


def downgrade(url: str, revision: str, *, script_location: str | Path | None = None) -> None:
    """alembic downgrade (e.g. "base", "-1"). Sync: from async code use `adowngrade`."""
    with _alembic_lock:
        command.downgrade(alembic_config(url, script_location=script_location), revision)


def check(url: str) -> None:
    """alembic check: raises AutogenerateDiffsDetected if the models and the database differ."""
    with _alembic_lock:
        command.check(alembic_config(url))


async def acheck(url: str) -> None:
    await asyncio.to_thread(check, url)


async def aupgrade(url: str, revision: str = "head", *, script_location: str | Path | None = None) -> None:
    """`upgrade` in a worker thread, for use inside a running event loop."""
    await asyncio.to_thread(upgrade, url, revision, script_location=script_location)


async def adowngrade(url: str, revision: str, *, script_location: str | Path | None = None) -> None:
    """`downgrade` in a worker thread, for use inside a running event loop."""
    await asyncio.to_thread(downgrade, url, revision, script_location=script_location)


async def truncate_all(engine: AsyncEngine) -> None:
    """Delete every row of every app table (alembic's version table is not in the metadata)."""
    tables = metadata.sorted_tables
    if not tables:
        return
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
            await conn.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(tables):  # children before parents: foreign keys stay satisfied
            await conn.execute(table.delete())
