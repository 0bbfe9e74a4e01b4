"""The Alembic revisions build exactly the schema the models describe, on SQLite and PostgreSQL.

Every test works on a database of its own (never the shared session database: these downgrade).
"""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from advanced_alchemy.types import GUID
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from tests import dbutil
from webapp.db import create_engine, metadata, sqlalchemy_config
from webapp.models import (
    Answer,
    ApiToken,
    Form,
    OutboxEvent,
    Question,
    QuestionKind,
    Response,
    User,
)
from webapp.settings import Settings

BACKENDS = ["sqlite", "postgres"]
APP_TABLES = set(metadata.tables)
# the core chain (with its cascading foreign keys) that `seed` fills: one row each
SEEDED = frozenset({"users", "api_tokens", "forms", "questions", "responses", "answers", "outbox_events"})


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    database_url = await dbutil.create_database(request.param)
    try:
        yield database_url
    finally:
        await dbutil.drop_database(database_url)


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    """The app's own engine for that database (SQLite: foreign_keys=ON, WAL)."""
    eng = create_engine(dataclasses.replace(Settings(), database_url=url), pool=False)
    yield eng
    await eng.dispose()


def compare_type(
    ctx: MigrationContext, _col: Any, _meta_col: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    """The same as env.py's: SQLite reflects GUID's BINARY(16) as NUMERIC(16), which is no change."""
    if ctx.dialect.name == "sqlite" and isinstance(metadata_type, GUID):
        if 16 in (getattr(inspected_type, "precision", None), getattr(inspected_type, "length", None)):
            return False
    return None


def alembic_options(engine: AsyncEngine) -> dict[str, Any]:
    """What env.py hands to context.configure(), taken from the same place (the app's alembic config)."""
    config = sqlalchemy_config(
        Settings(database_url=engine.url.render_as_string(hide_password=False)), engine=engine
    ).alembic_config
    assert config.compare_type
    return {
        "compare_type": compare_type,
        "render_as_batch": config.render_as_batch,
        "version_table": config.version_table_name,
        "target_metadata": metadata,
    }


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def current_heads(engine: AsyncEngine) -> set[str]:
    options = alembic_options(engine)

    def heads(sync: Connection) -> set[str]:
        return set(MigrationContext.configure(sync, opts=options).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(heads)


async def seed(engine: AsyncEngine) -> None:
    """One row in each of the SEEDED tables, through the ORM, as the app would write them."""
    user = User(email=f"{uuid.uuid4().hex}@example.com", password_hash="x")
    async with async_sessionmaker(engine, expire_on_commit=False)() as session, session.begin():
        session.add(user)
        await session.flush()
        form = Form(owner_id=user.id, title="Survey", slug=uuid.uuid4().hex[:12])
        session.add(form)
        session.add(ApiToken(user_id=user.id, name="t", token_hash=uuid.uuid4().hex, prefix="fw_"))
        await session.flush()
        question = Question(form_id=form.id, position=1, kind=QuestionKind.SHORT_TEXT, text="Name?")
        response = Response(form_id=form.id, form_version=1)
        session.add_all([question, response])
        await session.flush()
        session.add(Answer(response_id=response.id, question_id=question.id, value="Ada", text="Ada"))
        session.add(
            OutboxEvent(
                event_id=uuid.uuid4(),
                event_type="response.created",
                form_id=form.id,
                response_id=response.id,
                payload={"response_id": str(response.id)},
            )
        )


async def seeded_counts(engine: AsyncEngine) -> set[int]:
    counts = await row_counts(engine)
    return {counts[name] for name in SEEDED}


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in metadata.sorted_tables
        }


async def test_upgrade_head_matches_models(url: str, engine: AsyncEngine) -> None:
    await dbutil.aupgrade(url)

    options = alembic_options(engine)

    def diff(sync: Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(sync, opts=options), metadata)

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []
    await dbutil.acheck(url)  # the same comparison, as env.py configures it (`alembic check`)

    head = ScriptDirectory.from_config(dbutil.alembic_config(url)).get_current_head()
    assert await current_heads(engine) == {head}
    assert await table_names(engine) == APP_TABLES | {options["version_table"]}


async def test_downgrade_base_and_upgrade_again(url: str, engine: AsyncEngine) -> None:
    version_table = alembic_options(engine)["version_table"]
    await dbutil.aupgrade(url)
    await seed(engine)

    await dbutil.adowngrade(url, "base")
    assert await table_names(engine) == {version_table}
    assert await current_heads(engine) == set()
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            leftovers = await conn.scalars(
                text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND relname <> :vt AND relname NOT LIKE :vt_like"
                ),
                {"vt": version_table, "vt_like": f"{version_table}%"},
            )
            assert leftovers.all() == []  # no sequence, index or type left behind

    await dbutil.aupgrade(url)
    assert await table_names(engine) == APP_TABLES | {version_table}
    await seed(engine)
    assert await seeded_counts(engine) == {1}


async def test_truncate_all_empties_every_table_and_restarts_ids(url: str, engine: AsyncEngine) -> None:
    await dbutil.aupgrade(url)
    await seed(engine)
    await seed(engine)
    assert await seeded_counts(engine) == {2}

    await dbutil.truncate_all(engine)
    assert set((await row_counts(engine)).values()) == {0}
    assert await current_heads(engine) != set()  # alembic's version table is left alone

    await seed(engine)
    async with engine.connect() as conn:
        assert (await conn.execute(select(OutboxEvent.id))).scalar_one() == 1


# --- revisions that rebuild tables: the SQLite foreign-key policy in env.py -------------------------


def scratch_migrations(tmp_path: Path, body: str) -> Path:
    """A copy of migrations/ with one extra revision 9999 whose schema_upgrades() is `body`."""
    location = tmp_path / "migrations"
    shutil.copytree(dbutil.ALEMBIC_INI.parent, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(location)).get_current_head()
    header = textwrap.dedent(
        f'''
        """scratch"""
        import uuid

        import sqlalchemy as sa
        from alembic import op

        from webapp.forms.models import Form

        revision = "9999"
        down_revision = {head!r}
        branch_labels = None
        depends_on = None


        def downgrade():
            sqlite = op.get_context().dialect.name == "sqlite"
            with op.batch_alter_table("users", recreate="always" if sqlite else "auto") as batch:
                batch.drop_column("nickname")


        def upgrade():
            sqlite = op.get_context().dialect.name == "sqlite"
        '''
    )
    upgrade_body = textwrap.indent(textwrap.dedent(body).strip(), " " * 4)
    (location / "versions" / "9999_scratch.py").write_text(header + upgrade_body + "\n")
    return location


async def test_rebuilding_a_parent_table_keeps_its_children(url: str, engine: AsyncEngine, tmp_path: Path) -> None:
    """On SQLite, batch mode rebuilds `users` (DROP + rename): with foreign_keys=ON that DROP would
    cascade and empty forms, questions, responses and answers. env.py runs migrations with them off."""
    location = scratch_migrations(
        tmp_path,
        """
        with op.batch_alter_table("users", recreate="always" if sqlite else "auto") as batch:
            batch.add_column(sa.Column("nickname", sa.String(50), nullable=True))
        """,
    )
    await dbutil.aupgrade(url)
    await seed(engine)

    before = await row_counts(engine)
    assert await seeded_counts(engine) == {1}
    await dbutil.aupgrade(url, script_location=location)
    assert await row_counts(engine) == before
    await dbutil.adowngrade(url, "-1", script_location=location)
    assert await row_counts(engine) == before

    if engine.dialect.name == "sqlite":  # the app's own connections still enforce foreign keys
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1


async def test_revision_leaving_dangling_references_is_rolled_back(
    url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """PostgreSQL refuses the orphan row itself; on SQLite env.py's foreign_key_check does. Either way
    the whole revision (its ALTER included) is rolled back and the database stays at the previous head."""
    location = scratch_migrations(
        tmp_path,
        """
        with op.batch_alter_table("users") as batch:
            batch.add_column(sa.Column("nickname", sa.String(50), nullable=True))
        # a form whose owner does not exist (the table's Python-side defaults fill the rest)
        op.bulk_insert(Form.__table__, [{"owner_id": uuid.uuid4(), "title": "orphan", "slug": "orphan"}])
        """,
    )
    await dbutil.aupgrade(url)
    head_before = await current_heads(engine)

    with pytest.raises(Exception, match=r"foreign key|dangling"):
        await dbutil.aupgrade(url, script_location=location)

    assert await current_heads(engine) == head_before
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("users")})
        assert "nickname" not in columns
        assert (await conn.execute(select(func.count()).select_from(Form))).scalar_one() == 0
