"""Shared fixtures. Integration tests run once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests import dbutil
from webapp.accounts.service import create_token, create_user
from webapp.app import create_app
from webapp.db import create_engine
from webapp.settings import Settings

BACKENDS = ["sqlite", "postgres"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only exercise what only the PostgreSQL path has (SKIP LOCKED,
    LISTEN/NOTIFY, the broker-path processes): they are not generated for SQLite at all."""
    dropped = [i for i in items if i.get_closest_marker("postgres_only")
               and getattr(i, "callspec", None) is not None and i.callspec.params.get("backend") == "sqlite"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [i for i in items if i not in gone]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
async def database_url(backend: str) -> AsyncIterator[str]:
    url = await dbutil.create_database(backend)
    try:
        await dbutil.aupgrade(url)
        yield url
    finally:
        await dbutil.drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return replace(Settings(), env="test", database_url=database_url, db_pool_size=5)


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> None:
    await dbutil.truncate_all(engine)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    # One app (and engine) per test: the test client runs it on an event loop of its own,
    # and pooled asyncpg connections cannot cross loops.
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar, clean_db: None) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app) as c:
        yield c


@pytest.fixture
def app_for_url():
    """A test client for an app on another database (e.g. one the CLI just migrated)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def factory(url: str):
        async with AsyncTestClient(create_app(replace(Settings(), env="test", database_url=url))) as c:
            yield c

    return factory


@dataclass
class Owner:
    id: object
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


_counter = itertools.count(1)


@pytest.fixture
def make_owner(sessionmaker: async_sessionmaker[AsyncSession], clean_db: None):
    async def factory(email: str | None = None, password: str = "correct horse battery") -> Owner:
        email = email or f"owner{next(_counter)}@example.com"
        async with sessionmaker() as session, session.begin():
            user = await create_user(session, email, password)
            _, token = await create_token(session, user, "tests")
        return Owner(user.id, user.email, token)

    return factory


@pytest.fixture
async def owner(make_owner) -> Owner:
    return await make_owner()
