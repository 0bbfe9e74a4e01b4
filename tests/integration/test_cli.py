"""The `formwright` console script, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import dbutil

BIN = Path(sys.executable).parent / "formwright"


@pytest.fixture
async def cli_env(backend: str, tmp_path):
    url = await dbutil.create_database(backend)
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "test"}
    try:
        yield env
    finally:
        await dbutil.drop_database(url)


def run(env, *args, input_text=None):
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, input=input_text,
                          timeout=120)


async def test_upgrade_then_users_and_tokens(cli_env):
    r = run(cli_env, "database", "upgrade", "--no-prompt")
    assert r.returncode == 0, r.stderr + r.stdout
    r = run(cli_env, "users", "create", "Ada@Example.com", "--password", "s3cret-pass")
    assert r.returncode == 0, r.stderr
    assert "ada@example.com" in r.stdout
    r = run(cli_env, "users", "create", "ada@example.COM", "--password", "s3cret-pass")
    assert r.returncode != 0 and "already exists" in r.stderr
    r = run(cli_env, "users", "create", "bob@example.com", input_text="pw-bob-123\npw-bob-123\n")
    assert r.returncode == 0, r.stderr
    r = run(cli_env, "users", "create", "short@example.com", "--password", "x")
    assert r.returncode != 0 and "8 characters" in r.stderr
    r = run(cli_env, "tokens", "create", "ADA@example.com", "--name", "laptop")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("fw_")
    r = run(cli_env, "tokens", "create", "nobody@example.com")
    assert r.returncode != 0 and "No user" in r.stderr


async def test_token_from_cli_works_against_the_api(cli_env, app_for_url):
    assert run(cli_env, "database", "upgrade", "--no-prompt").returncode == 0
    assert run(cli_env, "users", "create", "c@example.com", "--password", "password-c").returncode == 0
    token = run(cli_env, "tokens", "create", "c@example.com").stdout.strip().splitlines()[-1]
    async with app_for_url(cli_env["DATABASE_URL"]) as client:
        r = await client.post("/api/v1/forms", json={"title": "From CLI"},
                              headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201


@pytest.mark.postgres_only
async def test_backfill_fills_the_listing_copy_of_older_responses(cli_env, app_for_url):
    """Rows stored before migration 0003 have no copy of their answers; the command fills it, and
    the listing reads the same before and after."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from webapp.responses.readmodel import order_stamp

    assert run(cli_env, "database", "upgrade", "--no-prompt").returncode == 0
    assert run(cli_env, "users", "create", "d@example.com", "--password", "password-d").returncode == 0
    token = run(cli_env, "tokens", "create", "d@example.com").stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    async with app_for_url(cli_env["DATABASE_URL"]) as client:
        form = (await client.post("/api/v1/forms", headers=auth, json={
            "title": "Old", "status": "open", "questions": [{"text": "Name"}, {"text": "Tags", "kind": "multiple_choice",
                                                              "options": ["a", "b"]}]})).json()
        name, tags = (q["id"] for q in form["questions"])
        for i in range(5):
            r = await client.post(f"/api/v1/forms/{form['id']}/responses",
                                  json={"answers": {name: f'N"{i}', tags: ["b", "a"][: i % 3]}})
            assert r.status_code == 201, r.text
        listing = f"/api/v1/forms/{form['id']}/responses"
        before = (await client.get(listing, headers=auth)).json()
        engine = create_async_engine(cli_env["DATABASE_URL"])
        try:
            async with engine.begin() as conn:  # as migration 0003 leaves older rows
                await conn.execute(text("UPDATE responses SET answers_json = NULL, answers_order = NULL"))
            assert (await client.get(listing, headers=auth)).json() == before
            r = run(cli_env, "responses", "backfill", "--batch-size", "2")
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "5 responses filled."
            assert run(cli_env, "responses", "backfill").stdout.strip() == "0 responses filled."
            async with engine.connect() as conn:
                copies = (await conn.execute(text("SELECT id, answers_json FROM responses"))).tuples().all()
                stamps = set((await conn.execute(text("SELECT answers_order FROM responses"))).scalars())
        finally:
            await engine.dispose()
        assert (await client.get(listing, headers=auth)).json() == before
        # Filled under the current question order, so the listing uses them.
        assert stamps == {order_stamp([uuid.UUID(name), uuid.UUID(tags)])}
        by_id = {item["id"]: item["answers"] for item in before["items"]}
        assert {str(rid): json.loads(copy) for rid, copy in copies} == by_id
