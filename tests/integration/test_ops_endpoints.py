"""Operations endpoints against a running app: /health, /ready (up, and with the database or the
broker down), /metrics, request ids; the production server command (uvicorn with several
workers) for multi-process metrics, JSON logs and a graceful SIGTERM; the relay/worker side port."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.pipeline_fixtures import pipeline_env
from webapp.app import create_app
from webapp.observability import WORKER_BATCH_SECONDS, MetricsServer
from webapp.outbox.models import OutboxEvent
from webapp.settings import ROOT, Settings

pytest_plugins = ("tests.pipeline_fixtures",)

BROKER_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SUBMIT_ROUTE = "/api/v1/forms/{form_id}/responses"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def open_form(client, owner) -> tuple[str, str]:
    r = await client.post("/api/v1/forms", headers=owner.headers, json={
        "title": "Ops", "status": "open", "questions": [{"text": "Name", "mandatory": True}]})
    assert r.status_code == 201, r.text
    form = r.json()
    return form["id"], form["questions"][0]["id"]


# ---- /health and /ready ------------------------------------------------------------------------

async def test_health_is_ok(client):
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client):
    r = await client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_ready_checks_the_broker_when_configured(settings, clean_db):
    async with AsyncTestClient(create_app(replace(settings, amqp_url=BROKER_URL))) as c:
        r = await c.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "broker": "ok"}


def _down_urls(tmp: Path) -> dict[str, str]:
    (tmp / "a-directory.db").mkdir()
    return {
        "postgres-closed-port": f"postgresql+asyncpg://postgres:pg-s3cret@127.0.0.1:{closed_port()}/formwright",
        "postgres-no-such-database": f"postgresql+asyncpg://postgres@127.0.0.1:5432/fw_test_missing_{uuid.uuid4().hex[:8]}",
        "sqlite-unopenable": f"sqlite+aiosqlite:///{tmp / 'a-directory.db'}",
    }


@pytest.mark.parametrize("case", ["postgres-closed-port", "postgres-no-such-database", "sqlite-unopenable"])
async def test_ready_is_503_with_the_reason_when_the_database_is_down(case, tmp_path):
    url = _down_urls(tmp_path)[case]
    app = create_app(replace(Settings(), env="test", database_url=url))
    async with AsyncTestClient(app) as c:
        ready = await c.get("/ready")
        health = await c.get("/health")
        metrics = await c.get("/metrics")
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    body = ready.json()
    assert body["status"] == 503 and body["title"] == "Not ready"
    assert body["checks"]["database"] != "ok" and body["detail"].startswith("database: ")
    if case == "postgres-no-such-database":
        assert "does not exist" in body["checks"]["database"]
    assert "pg-s3cret" not in ready.text
    # Liveness does not depend on the database: an outage must not get every pod restarted.
    assert health.status_code == 200
    assert metrics.status_code == 200 and value(metrics.text, "formwright_database_up") == 0


async def test_ready_is_503_when_the_broker_is_down(settings, clean_db):
    url = f"amqp://guest:mq-s3cret@127.0.0.1:{closed_port()}/"
    async with AsyncTestClient(create_app(replace(settings, amqp_url=url))) as c:
        r = await c.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] != "ok" and "broker: " in body["detail"]
    assert "mq-s3cret" not in r.text


# ---- /metrics ----------------------------------------------------------------------------------

async def test_metrics_count_submissions_requests_and_the_outbox(client, owner, sessionmaker):
    form_id, question_id = await open_form(client, owner)
    before = (await client.get("/metrics")).text
    ok = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {question_id: "Ada"}})
    bad = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {question_id: "  "}})
    gone = await client.post(f"/api/v1/forms/{uuid.uuid4()}/responses", json={"answers": {}})
    assert (ok.status_code, bad.status_code, gone.status_code) == (201, 422, 404)
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("formwright_submissions_total", outcome="accepted", reason="") == 1
    assert delta("formwright_submissions_total", outcome="rejected", reason="invalid") == 1
    assert delta("formwright_submissions_total", outcome="rejected", reason="not_found") == 1
    for status in ("201", "422", "404"):
        assert delta("formwright_http_requests_total", method="POST", route=SUBMIT_ROUTE, status=status) == 1
    assert delta("formwright_http_request_duration_seconds_count", method="POST", route=SUBMIT_ROUTE) == 3
    assert str(form_id) not in after, "routes are labelled by template, never by the raw path"
    async with sessionmaker() as s:
        unpublished = await s.scalar(select(func.count()).select_from(OutboxEvent)
                                     .where(OutboxEvent.published_at.is_(None)))
    assert unpublished >= 1
    assert value(after, "formwright_outbox_backlog") == unpublished
    assert value(after, "formwright_outbox_oldest_age_seconds") >= 0
    assert value(after, "formwright_database_up") == 1
    names = {family.name for family in text_string_to_metric_families(after)}
    assert {"formwright_deliveries", "formwright_worker_batch_seconds", "formwright_external_api_errors",
            "formwright_delivery_results", "formwright_dead_letters", "formwright_relay_published"} <= names


async def test_metrics_are_not_served_through_a_proxy(client):
    r = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 404
    assert "formwright_" not in r.text


# ---- request ids -------------------------------------------------------------------------------

async def test_request_id_is_echoed_or_generated_on_every_answer(client):
    given = await client.get("/health", headers={"X-Request-ID": "req-42.abc"})
    assert given.headers["x-request-id"] == "req-42.abc"
    first, second = await client.get("/health"), await client.get("/no/such/page")
    assert second.status_code == 404
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    for unsafe in ("has spaces", "x" * 200, "quote\"d"):
        r = await client.get("/health", headers={"X-Request-ID": unsafe})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), unsafe


# ---- logs --------------------------------------------------------------------------------------

LOG_SCRIPT = """
import structlog
from webapp.logging import configure_logging
from webapp.settings import Settings
configure_logging(Settings(env="production", log_level="INFO"))
log = structlog.get_logger("t")
structlog.contextvars.bind_contextvars(request_id="rid-7")
log.info("submitted", answers=[{"value": "my-secret-answer"}], password="pw-123",
         target="amqp://user:url-pass@broker:5672/", twilio_auth_token="tok-9")
log.debug("hidden at info", detail="debug-only")
import logging
logging.getLogger("uvicorn.error").warning("from the stdlib")
"""


def test_logs_are_json_with_request_ids_and_no_secrets_or_answers():
    result = subprocess.run([sys.executable, "-c", LOG_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["submitted", "from the stdlib"]
    assert all(line["request_id"] == "rid-7" for line in lines)
    assert lines[1]["logger"] == "uvicorn.error" and lines[1]["level"] == "warning"
    for leaked in ("my-secret-answer", "pw-123", "url-pass", "tok-9", "debug-only"):
        assert leaked not in result.stderr
    assert lines[0]["target"] == "amqp://user:***@broker:5672/"


# ---- the relay/worker side port ----------------------------------------------------------------

def test_side_port_serves_metrics_and_health_until_stopped():
    healthy = threading.Event()
    healthy.set()
    server = MetricsServer(0, "127.0.0.1", healthy=healthy.is_set).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        WORKER_BATCH_SECONDS.labels("sms").observe(0.2)
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert value(metrics.text, "formwright_worker_batch_seconds_count", integration="sms") >= 1
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        healthy.clear()  # e.g. the broker connection closed: liveness fails, the pod is restarted
        assert httpx.get(f"{base}/health", timeout=5).status_code == 503
        assert httpx.get(f"{base}/other", timeout=5).status_code == 404
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=5)


async def wait_healthy(url: str, proc, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as c:
        while time.monotonic() < deadline:
            assert proc.alive(), proc.log()
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling for start-up, bounded by the deadline
    raise AssertionError(f"{url} not healthy within {within} s:\n{proc.log()}")


@pytest.mark.postgres_only
async def test_relay_and_worker_serve_metrics_on_their_side_port_until_sigterm(
        backend, pipeline_settings, processes):
    for role, start, metric in (
            ("relay", processes.relay, "formwright_relay_published_total"),
            ("worker", lambda env: processes.workers(env, "webhook"), "formwright_worker_batch_seconds")):
        port = closed_port()
        proc = start(pipeline_env(pipeline_settings, METRICS_PORT=str(port)))
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(f"{base}/health", proc)
        async with httpx.AsyncClient(timeout=5) as c:
            metrics = await c.get(f"{base}/metrics")
        assert metrics.status_code == 200 and metric in metrics.text, role
        assert await proc.terminate() == 0, proc.log()
        async with httpx.AsyncClient(timeout=5) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get(f"{base}/health")


# ---- the production server command -------------------------------------------------------------

class Server:
    """The compose file's web command, on loopback, with a thread collecting its stderr lines."""

    def __init__(self, env: dict[str, str]) -> None:
        command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
        self.port = closed_port()
        command = [self.port_arg(a) for a in command]
        assert command[0] == "uvicorn"
        self.proc = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def port_arg(self, arg: str) -> str:
        return {"0.0.0.0": "127.0.0.1", "8000": str(self.port)}.get(arg, arg)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 20, *, event: str | None = None) -> str:
        """The next stderr line containing `text` (and, given `event`, a JSON line of that event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line and (event is None or (line.startswith("{") and json.loads(line)["event"] == event)):
                return line
        raise AssertionError(f"no log line with {text!r} within {timeout} s; saw:\n{''.join(self.seen)}")

    def drain(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.drain()
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling for start-up, bounded by the deadline
        raise AssertionError(f"server not ready in {timeout} s:\n{self.drain()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def fresh_get(url: str, **kwargs) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to any uvicorn worker."""
    with httpx.Client(timeout=10) as c:
        return c.get(url, **kwargs)


@pytest.mark.postgres_only
async def test_production_server_shares_metrics_across_workers_logs_json_and_drains_on_sigterm(
        backend, database_url, make_owner, tmp_path):
    owner = await make_owner()
    secret = f"prod-secret-{uuid.uuid4().hex}"
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": secret, "DATABASE_URL": database_url,
           "AMQP_URL": BROKER_URL, "EMBEDDED_DELIVERY": "false", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "DEBUG",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    server = Server(env)
    try:
        # The server is another process: drive it from a thread with plain blocking sockets.
        await asyncio.to_thread(exercise_production_server, server, owner.headers, secret)
    finally:
        server.stop()


def exercise_production_server(server: Server, auth: dict[str, str], secret: str) -> None:
    server.wait_ready()
    assert fresh_get(f"{server.url}/ready").json()["checks"] == {"database": "ok", "broker": "ok"}

    # Whichever worker answers a scrape reports the sum over all workers.
    def count(text: str) -> float:
        return value(text, "formwright_http_requests_total", method="GET", route="/health", status="200")

    start = count(fresh_get(f"{server.url}/metrics").text)
    for _ in range(12):
        assert fresh_get(f"{server.url}/health").status_code == 200
    scrapes = [count(fresh_get(f"{server.url}/metrics").text) for _ in range(4)]
    assert scrapes == [start + 12] * 4

    # JSON lines with the caller's request id.
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/api/v1/forms", headers={**auth, "X-Request-ID": "prod-req-1"}, json={
            "title": "Graceful", "status": "open", "questions": [{"text": "Name"}]})
        assert r.status_code == 201 and r.headers["x-request-id"] == "prod-req-1"
        form_id, question_id = r.json()["id"], r.json()["questions"][0]["id"]
    line = json.loads(server.wait_for_line('"prod-req-1"', event="request"))
    assert line["request_id"] == "prod-req-1" and line["route"] == "/api/v1/forms" and line["status"] == 201

    # SIGTERM while a request is in flight: the app is waiting for its body (uvicorn said
    # "100 Continue"), the body arrives after the signal, and the request still completes.
    body = json.dumps({"answers": {question_id: "Grace Hopper"}}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"POST /api/v1/forms/{form_id}/responses HTTP/1.1\r\nHost: t\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line("Waiting for connections to close")
        sock.sendall(body)
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 201"), answer
    assert server.proc.wait(timeout=30) == 0
    log = server.drain()
    assert secret not in log and "guest:guest" not in log
    worker_lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert any(x.get("logger") == "uvicorn.error" for x in worker_lines), "uvicorn's own lines are JSON too"
