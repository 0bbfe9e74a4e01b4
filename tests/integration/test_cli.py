"""The `formwright` console script, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
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
