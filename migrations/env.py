"""Alembic environment: advanced-alchemy's async template, adapted to run two ways.

1. From the app's CLI (`formwright database upgrade`): `context.config` is advanced-alchemy's
   `AlembicCommandConfig`, which carries `db_url`, `bind_key`, `version_table_name`, `compare_type`,
   `render_as_batch`, `user_module_prefix` ... as attributes.
2. Programmatically (tests/dbutil.py) or with the plain `alembic` command: a plain alembic `Config`;
   the URL comes from `config.attributes["db_url"]`, the `sqlalchemy.url` main option or DATABASE_URL,
   and every other option from the app's own `sqlalchemy_config()`, so both paths agree (notably on
   the version table, which advanced-alchemy names `alembic_versions`, not alembic's default).

A caller that already holds a sync `Connection` may pass it as `config.attributes["connection"]`.

SQLite: migrations run with `PRAGMA foreign_keys=OFF`, unlike the app. With foreign keys on, the
"move and copy" rebuild that batch mode does for most ALTERs (`DROP TABLE users` + rename) performs an
implicit `DELETE FROM users`, which cascades and silently empties every referencing table. Keys off
during the rebuild, then `PRAGMA foreign_key_check`, is the procedure SQLite documents; here the check
runs before each revision commits, so a revision that leaves dangling references fails and is rolled
back. Each revision runs in one real transaction on SQLite too (pysqlite's implicit transactions are
replaced by an explicit BEGIN), so a failed batch operation leaves no half-rebuilt table behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from logging.config import fileConfig
from typing import TYPE_CHECKING, Any

from advanced_alchemy.base import metadata_registry
from advanced_alchemy.types import GUID
from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection

import webapp.models  # noqa: F401  (imports every model, so the metadata holds every table)
from webapp.db import create_engine, metadata, sqlalchemy_config
from webapp.settings import Settings, normalise_database_url

if TYPE_CHECKING:
    from collections.abc import Iterable

    from advanced_alchemy.extensions.litestar import AlembicAsyncConfig
    from alembic.config import Config
    from alembic.operations import MigrationScript
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import AsyncEngine

config: Config = context.config
_AUTO_REV_ID = re.compile(r"^[0-9a-f]{12}$")


def _configure_logging() -> None:
    """Apply alembic.ini's logging only when nobody configured logging (plain CLI use)."""
    if config.config_file_name and not logging.getLogger().handlers:
        fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = (
        getattr(config, "db_url", None)
        or config.attributes.get("db_url")
        or config.get_main_option("sqlalchemy.url")
        or Settings.from_env().database_url
    )
    return normalise_database_url(str(url))


def _url_of(bind: AsyncEngine | Connection) -> str:
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    return url.render_as_string(hide_password=False)


def _settings(url: str) -> Settings:
    return dataclasses.replace(Settings.from_env(), database_url=url)


def _app_alembic_config(engine: AsyncEngine) -> AlembicAsyncConfig:
    return sqlalchemy_config(_settings(_url_of(engine)), engine=engine).alembic_config


def _options(engine: AsyncEngine) -> dict[str, Any]:
    """context.configure() options: the CLI's attributes win, the app's alembic config fills the rest."""
    defaults = _app_alembic_config(engine)
    bind_key = getattr(config, "bind_key", None)

    def pick(attr: str, default: Any) -> Any:
        value = getattr(config, attr, None)
        return default if value is None else value

    return {
        "target_metadata": metadata_registry.get(bind_key) if bind_key else metadata,
        "compare_type": compare_type if pick("compare_type", defaults.compare_type) else False,
        "render_as_batch": pick("render_as_batch", defaults.render_as_batch),
        "version_table": pick("version_table_name", defaults.version_table_name),
        "version_table_schema": pick("version_table_schema", defaults.version_table_schema),
        "version_table_pk": pick("version_table_pk", True),
        # The template's script.py.mako aliases advanced-alchemy's types onto `sa`.
        "user_module_prefix": pick("user_module_prefix", defaults.user_module_prefix),
        "process_revision_directives": _number_revisions,
        "on_version_apply": [_check_sqlite_foreign_keys],
    }


def compare_type(
    ctx: MigrationContext,
    _inspected_column: Any,
    _metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """Alembic's type comparison, except that SQLite reflects GUID's BINARY(16) as NUMERIC(16) (type
    affinity), which is no change: without this every UUID column would show up in each autogenerate."""
    if ctx.dialect.name == "sqlite" and isinstance(metadata_type, GUID):
        sizes = (getattr(inspected_type, "precision", None), getattr(inspected_type, "length", None))
        if 16 in sizes:
            return False
    return None  # alembic's default comparison


def _number_revisions(ctx: MigrationContext, _revision: Any, directives: list[MigrationScript]) -> None:
    """Name new revisions 0002, 0003 ... after the highest existing number (unless a rev id was given)."""
    if not directives or not _AUTO_REV_ID.match(directives[0].rev_id or ""):
        return
    script = ScriptDirectory.from_config(config)
    existing: Iterable[str] = (rev.revision for rev in script.walk_revisions())
    numbers = [int(rev) for rev in existing if rev.isdigit()]
    directives[0].rev_id = f"{max(numbers, default=0) + 1:04d}"


def _check_sqlite_foreign_keys(*, ctx: MigrationContext, step: Any, **_kw: Any) -> None:
    """Runs inside each revision's transaction, after its changes: dangling references roll it back."""
    if ctx.as_sql or ctx.connection is None or ctx.dialect.name != "sqlite":
        return
    problems = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        sample = ", ".join(f"{table}(rowid {rowid}) -> {parent}" for table, rowid, parent, _ in problems[:5])
        msg = f"revision {step} leaves {len(problems)} rows with dangling foreign keys: {sample}"
        raise RuntimeError(msg)


def _sqlite_for_migrations(dbapi_connection: Any, _record: Any) -> None:
    # Runs after webapp.db's pragmas (WAL, busy timeout, foreign_keys=ON): see the module docstring.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()
    # SQLAlchemy's documented recipe: let us emit BEGIN ourselves, so DDL is transactional too.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.exec_driver_sql("BEGIN")


def _migration_engine(url: str) -> AsyncEngine:
    engine = create_engine(_settings(url), pool=False)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_for_migrations)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def do_run_migrations(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`--sql`) instead of running it; needs no connection."""
    engine = _migration_engine(_database_url())
    options = _options(engine)
    context.configure(url=engine.url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    # A fresh engine rather than the CLI's `config.engine` (the app's pooled engine): the migration
    # connection needs its own SQLite settings, and is disposed of when done.
    engine = _migration_engine(_database_url())
    options = _options(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations, options)
    finally:
        await engine.dispose()


def run() -> None:
    _configure_logging()
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        run_migrations_offline()
    elif connection is not None:
        # The caller owns this connection (and, on SQLite, its pragmas and transaction handling).
        do_run_migrations(connection, _options(_migration_engine(_url_of(connection))))
    else:
        asyncio.run(run_migrations_online())


run()
