"""Browser tests: the real app under uvicorn (a subprocess, like production) on a fresh SQLite
database, driven by Debian's Chromium through Playwright's async API.

The async API runs on pytest-asyncio's session loop, like every other test here (the sync API
keeps a loop of its own running in the main thread, which breaks the async tests after it), so
browser tests are `async def` and await Playwright: `await page.goto("/forms")`,
`await expect(locator).to_be_visible()` (expect from playwright.async_api).

Fixtures: live_server, browser, new_context, context, page, shot, signup, api_token, api.
`make test` installs Chromium when it is missing (see the Makefile); `playwright install`
cannot download browsers on these machines.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import dbutil
from webapp.settings import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)


@dataclass
class LiveServer:
    url: str
    database_url: str
    log_path: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run alembic (which calls asyncio.run) away from pytest-asyncio's event loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the app did not answer /health within {timeout}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    directory = Path(tempfile.mkdtemp(prefix=dbutil.DB_PREFIX))
    database_url = f"sqlite+aiosqlite:///{directory / 'formwright.db'}"
    _in_thread(lambda: dbutil.upgrade(database_url))
    port = _free_port()
    log_path = directory / "server.log"
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": database_url, "HOST": "127.0.0.1", "PORT": str(port),
           "SUBMIT_RATE_PER_MINUTE": "1000", "LOG_LEVEL": "WARNING", "AMQP_URL": ""}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "webapp.asgi:app", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", database_url, log_path)
    try:
        _wait_until_up(server.url, proc, log_path)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once per session)
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs it as root) or "
                    "`sudo apt-get install -y chromium`.", pytrace=False)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def new_context(browser: Any, live_server: LiveServer) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Make a separate browser context (its own cookies: another person). Closed after the test."""
    made: list[Any] = []

    async def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("base_url", live_server.url)
        kwargs.setdefault("viewport", {"width": 1280, "height": 900})
        ctx = await browser.new_context(**kwargs)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx

    yield factory
    for ctx in made:
        await ctx.close()


@pytest.fixture
async def context(new_context: Callable[..., Awaitable[Any]]) -> Any:
    return await new_context()


@pytest.fixture
async def page(context: Any) -> Any:
    return await context.new_page()


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Awaitable[Path]]:
    """await shot(page, "name") → a full-page screenshot in tests/e2e/screenshots/name.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def signup() -> Callable[..., Awaitable[str]]:
    """await signup(page): sign up through the UI, ending on the dashboard. Returns the email used."""

    async def do(page: Any, email: str | None = None, password: str = PASSWORD) -> str:
        email = email or f"person{next(_emails)}-{os.getpid()}@example.com"
        await page.goto("/signup")
        await page.get_by_label("Email address").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Create account").click()
        await page.wait_for_url("**/forms")
        return email

    return do


@pytest.fixture
def api_token() -> Callable[..., Awaitable[str]]:
    """await api_token(page): create an API token on /account/tokens (signed in) and return it."""

    async def do(page: Any, name: str = "e2e") -> str:
        await page.goto("/account/tokens")
        await page.get_by_label("Token name").fill(name)
        await page.get_by_role("button", name="Create token").click()
        return await page.locator("#token-value").input_value()

    return do


@pytest.fixture
def api(live_server: LiveServer) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """await api("POST", "/api/v1/forms", token, json={...}) → (status, decoded body)."""
    import httpx

    async def call(method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
            r = await http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        return r.status_code, (r.json() if r.content and "json" in r.headers.get("content-type", "") else r.text)

    return call
