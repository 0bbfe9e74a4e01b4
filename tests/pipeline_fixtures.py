"""Fixtures and helpers for delivery-pipeline tests (relay, workers, embedded mode, integrations).

Load them in a test module with

    pytest_plugins = ("tests.pipeline_fixtures",)

What is here:
- `rabbit_vhost` (session): a RabbitMQ vhost of its own (`rabbitmqctl add_vhost fw_test_...`),
  deleted at the end; `pipeline_settings` (per test): the `settings` fixture aimed at that vhost
  and the session's queue namespace (every queue purged first), short retry tiers and timeouts,
  embedded delivery off. It declares the topology of every installed kind, so it needs the kinds
  a test uses installed first (request `echo_plugin` before it when the test uses echo).
- `echo_plugin` (session): the tiny `formwright-echo` package from tests/fixtures/echo_integration,
  installed with pip into a temporary directory (not into the shared virtualenv) and put on
  sys.path, so `load_integrations()` sees the `echo` kind; subprocesses get it via PYTHONPATH.
- `echo_sink` (per test): the JSON-lines file the echo integration appends each delivery to.
- `processes` (per test): start `formwright relay` / `formwright workers run KIND` as real
  subprocesses against the test database and broker; everything still running is killed at the end.
- `wait_until(predicate, timeout=...)`: poll a (sync or async) predicate until it is truthy.
- `connect_integration`, `set_config`, `delivery_rows`, `queue_depth`, `open_form_with_question`.

PYTEST_DONT_REWRITE: test modules import the helpers before pytest loads this module as a plugin,
which would otherwise warn that its asserts cannot be rewritten (it has none that need it).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import pytest
from sqlalchemy import select
from uuid_utils.compat import uuid7

from webapp.deliveries.models import Delivery, FormIntegration
from webapp.outbox import broker
from webapp.plugins import load_integrations
from webapp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ECHO_SOURCE = ROOT / "tests" / "fixtures" / "echo_integration"
BIN = Path(sys.executable).parent
AMQP_BASE = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")


# ---- waiting ------------------------------------------------------------------------------------

async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]], *, timeout: float = 20.0,  # noqa: ASYNC109
    interval: float = 0.1, what: str = "the condition",
) -> Any:
    """Poll until `predicate()` returns something truthy and return it; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last value: {last!r})")
        await asyncio.sleep(interval)


# ---- RabbitMQ -------------------------------------------------------------------------------------

def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """An AMQP URL on a vhost of this test session's own."""
    name = f"fw_test_{os.getpid()}_{secrets.token_hex(3)}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{AMQP_BASE}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def rabbit_namespace() -> str:
    """One queue namespace for the session: every quorum queue costs the broker a Raft group, so
    tests share the topology and start from empty queues instead of declaring their own."""
    return f"t{os.getpid()}{secrets.token_hex(2)}."


@pytest.fixture
async def pipeline_settings(settings: Settings, rabbit_vhost: str, rabbit_namespace: str) -> Settings:
    """Settings for one pipeline test (fast retries, short timeouts), with the queues emptied."""
    pipeline = replace(
        settings, amqp_url=rabbit_vhost, amqp_namespace=rabbit_namespace,
        embedded_delivery=False, retry_tiers=(1, 2), delivery_max_attempts=3, delivery_handler_timeout=5.0,
        delivery_claim_timeout=6.0, outbox_poll_seconds=0.2, worker_linger=0.05, publish_timeout=5.0,
    )
    await purge_queues(pipeline)
    return pipeline


async def purge_queues(settings: Settings) -> None:
    """Declare the topology for every installed kind and empty all its queues."""
    topology = broker.Topology.from_settings(settings)
    kinds = load_integrations().kinds()
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await broker.declare(channel, topology, kinds)
        for kind in kinds:
            names = [topology.work_queue(kind), topology.dead_queue(kind),
                     *(topology.retry_queue(kind, t) for t in topology.tiers)]
            for name in names:
                await (await channel.get_queue(name, ensure=False)).purge()
    finally:
        await connection.close()


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in a queue (a passive declare: it must exist)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def drain(amqp_url: str, queue: str, *, limit: int = 10_000) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every ready message out of a queue (acked), to look at them."""
    connection = await aio_pika.connect(amqp_url)
    out = []
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=True)
        while len(out) < limit:
            message = await q.get(fail=False, no_ack=True)
            if message is None:
                break
            out.append(message)
        return out
    finally:
        await connection.close()


# ---- the echo integration ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def echo_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install formwright-echo with pip into a directory of its own, like any third-party package."""
    target = tmp_path_factory.mktemp("echo_site")
    source = tmp_path_factory.mktemp("echo_src") / "echo_integration"
    shutil.copytree(ECHO_SOURCE, source)  # pip builds in place; keep the build litter out of the tree
    result = subprocess.run(
        [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"could not install the echo integration:\n{result.stdout}\n{result.stderr}")
    sys.path.insert(0, str(target))
    load_integrations.cache_clear()
    if load_integrations().get("echo") is None:
        raise RuntimeError(f"the echo integration did not load: {load_integrations().errors}")
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("formwright_echo", None)
        load_integrations.cache_clear()


@dataclass
class EchoSink:
    path: Path

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def count(self) -> int:
        return len(self.lines())

    def config(self, mode: str = "ok", delay: float = 0.0) -> dict[str, Any]:
        return {"path": str(self.path), "mode": mode, "delay": delay}


@pytest.fixture
def echo_sink(tmp_path: Path, echo_plugin: Path) -> EchoSink:
    return EchoSink(tmp_path / "echo.jsonl")


# ---- database helpers ----------------------------------------------------------------------------

async def connect_integration(sessionmaker: Any, form_id: Any, kind: str, config: dict[str, Any], *,
                              name: str = "", enabled: bool = True) -> UUID:
    """Connect an integration to a form the way the integrations API stores it."""
    async with sessionmaker() as session, session.begin():
        row = FormIntegration(id=uuid7(), form_id=UUID(str(form_id)), kind=kind, name=name or kind,
                              config=config, enabled=enabled)
        session.add(row)
    return row.id


async def set_config(sessionmaker: Any, integration_id: UUID, config: dict[str, Any]) -> None:
    async with sessionmaker() as session, session.begin():
        row = await session.get(FormIntegration, integration_id)
        row.config = config


async def delivery_rows(sessionmaker: Any, **where: Any) -> list[Delivery]:
    async with sessionmaker() as session:
        stmt = select(Delivery).order_by(Delivery.created_at, Delivery.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(Delivery, key) == value)
        return list((await session.scalars(stmt)).all())


async def open_form_with_question(client: Any, owner: Any, title: str = "Pipeline") -> tuple[str, str]:
    """An open form with one short-text question, through the API; returns (form id, question id)."""
    r = await client.post("/api/v1/forms", headers=owner.headers, json={
        "title": title, "status": "open", "questions": [{"text": "Name", "mandatory": True}]})
    assert r.status_code == 201, r.text
    form = r.json()
    return form["id"], form["questions"][0]["id"]


async def submit(client: Any, form_id: str, question_id: str, value: str) -> str:
    r = await client.post(f"/api/v1/forms/{form_id}/responses",
                          json={"answers": [{"question_id": question_id, "value": value}]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# ---- processes -------------------------------------------------------------------------------------

def pipeline_env(settings: Settings, *extra_paths: Path, **overrides: str) -> dict[str, str]:
    """The environment a relay or worker subprocess needs to use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "DELIVERY_", "OUTBOX_"))}
    env.update({
        "APP_ENV": "test", "DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
        "AMQP_NAMESPACE": settings.amqp_namespace, "EMBEDDED_DELIVERY": "false",
        "DELIVERY_RETRY_TIERS": ",".join(str(t) for t in settings.retry_tiers),
        "DELIVERY_MAX_ATTEMPTS": str(settings.delivery_max_attempts),
        "DELIVERY_HANDLER_TIMEOUT_SECONDS": str(settings.delivery_handler_timeout),
        "DELIVERY_CLAIM_TIMEOUT_SECONDS": str(settings.delivery_claim_timeout),
        "OUTBOX_POLL_SECONDS": str(settings.outbox_poll_seconds),
        "OUTBOX_BATCH_SIZE": str(settings.outbox_batch_size),
        "WORKER_LINGER_SECONDS": str(settings.worker_linger),
        "AMQP_PUBLISH_TIMEOUT_SECONDS": str(settings.publish_timeout),
        "PYTHONUNBUFFERED": "1",
    })
    paths = [str(p) for p in extra_paths] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crash or an OOM kill."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)

    async def terminate(self, timeout: float = 20.0) -> int:  # noqa: ASYNC109
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                self.popen.kill()
                raise AssertionError(f"{self.name} did not stop within {timeout:g}s of SIGTERM:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)
        return int(self.popen.returncode)


class Processes:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Proc] = []
        self._n = itertools.count(1)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log_path = self.directory / f"{next(self._n):02d}-{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def relay(self, env: dict[str, str]) -> Proc:
        return self.start("relay", [str(BIN / "formwright"), "relay"], env)

    def workers(self, env: dict[str, str], *kinds: str) -> Proc:
        return self.start("workers-" + "-".join(kinds or ("all",)), [str(BIN / "formwright"), "workers", "run", *kinds], env)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} (pid {p.pid}) -----\n{p.log()[-4000:]}" for p in self.started)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.alive():
                proc.popen.kill()
                proc.popen.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.logs())  # pytest shows it only when the test failed
