"""A busy connection pool answers 503 with Retry-After and writes nothing; it never opens extra
connections past DB_POOL_SIZE."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from uuid import UUID

import httpx
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from sqlalchemy import func, select

from webapp.app import create_app
from webapp.forms.models import Form
from webapp.responses.models import Response

pytestmark = pytest.mark.postgres_only


async def test_exhausted_pool_answers_503_and_saves_nothing(settings, owner, sessionmaker):
    app = create_app(replace(settings, db_pool_size=1, db_pool_timeout=0.5))
    # The app runs on this test's own event loop (Litestar's test client would serialise requests).
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://test") as client:
        r = await client.post("/api/v1/forms", headers=owner.headers, json={
            "title": "Busy", "status": "open", "max_responses": 10, "questions": [{"text": "Name"}]})
        assert r.status_code == 201, r.text
        form = r.json()
        url = f"/api/v1/forms/{form['id']}/responses"
        body = {"answers": [{"question_id": form["questions"][0]["id"], "value": "Ada"}]}

        # A form with a response limit is locked by each submission; holding that lock elsewhere
        # keeps the first submission (and the pool's only connection) waiting.
        async with sessionmaker() as other, other.begin():
            await other.execute(select(Form.id).where(Form.id == UUID(form["id"])).with_for_update())
            first = asyncio.create_task(client.post(url, json=body))
            await asyncio.sleep(0.3)
            busy = await asyncio.wait_for(client.post(url, json=body), 5)
            assert not first.done()
        assert busy.status_code == 503, busy.text
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.headers["retry-after"] == "1"
        assert "nothing was saved" in busy.json()["detail"]
        assert (await first).status_code == 201
        assert app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().pool.size() == 1
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Response)) == 1


async def test_an_app_holds_one_connection_when_started_and_none_when_stopped(settings, owner):
    """Starting checks the database with one connection (a whole pool per web, relay and worker
    process would exhaust the server's connections for nothing); stopping closes them all."""
    app = create_app(replace(settings, db_pool_size=5))
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine()
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://test") as client:
        assert engine.pool.checkedin() == 1  # opened and checked at start, before any request
        pages = await asyncio.gather(*(client.get("/api/v1/forms", headers=owner.headers) for _ in range(4)))
        assert [p.status_code for p in pages] == [200] * 4
        assert engine.pool.checkedin() >= 1
    assert engine.pool.checkedin() == 0
