"""Submission → row in the (fake) Google Sheet, at a steady submission rate, through the broker path.

    .venv/bin/python -m bench.pipeline_latency --rate 200 --seconds 20

Runs the production pieces as separate processes against a throwaway PostgreSQL database and
RabbitMQ vhost: the web server (uvicorn), `formwright relay` and `formwright workers run sheets`.
Google is the fake Sheets/OAuth server from tests/fakes (real HTTP, real quota of 60 writes a
minute per account). Prints p50/p95 of the time from a submission's 201 to its row being in the
sheet, and checks that every submission became exactly one row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests import dbutil
from tests.fakes.google import FakeGoogle
from tests.fakes.service_account import make_service_account

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AMQP_BASE = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672").rstrip("/")
WORKSHEET = "Responses"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def _token(db_url: str) -> str:
    from dataclasses import replace

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from webapp.accounts.service import create_token, create_user
    from webapp.db import create_engine
    from webapp.settings import Settings

    engine = create_engine(replace(Settings(), database_url=db_url), pool=False)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as s, s.begin():
            user = await create_user(s, "latency@formwright.invalid", secrets.token_hex(8))
            _, token = await create_token(s, user, "latency-bench")
        return token
    finally:
        await engine.dispose()


async def _load(base: str, form_id: str, qid: str, rate: float, seconds: float) -> dict[str, float]:
    """Submit at a fixed schedule; return response id → time its 201 arrived."""
    done: dict[str, float] = {}
    errors = 0
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def one(i: int) -> None:
            nonlocal errors
            try:
                r = await client.post(f"/api/v1/forms/{form_id}/responses", json={"answers": {qid: f"person {i}"}})
            except httpx.TransportError:
                errors += 1
                return
            if r.status_code == 201:
                done[r.json()["id"]] = time.monotonic()
            else:
                errors += 1

        start = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    if errors:
        raise SystemExit(f"{errors} submissions were refused")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fw_latency_"))
    vhost = f"fw_bench_{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    db_url = asyncio.run(dbutil.create_database("postgres"))
    fake = FakeGoogle().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dbutil.upgrade(db_url)
        account = make_service_account(work)
        fake.register_account(account)
        sid = fake.create_spreadsheet("Latency", sheets=[WORKSHEET], share_with=[account.email])
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "AMQP_URL": f"{AMQP_BASE}/{vhost}", "APP_ENV": "production",
               "SECRET_KEY": "bench-only", "LOG_LEVEL": "WARNING", "SUBMIT_RATE_PER_MINUTE": "0",
               "SHEETS_API_URL": fake.url, "GOOGLE_TOKEN_URI": fake.token_uri,
               "GOOGLE_SERVICE_ACCOUNT_FILE": str(account.path), "METRICS_PORT": "0"}
        procs.append(_start([str(BIN / "uvicorn"), "webapp.asgi:app", "--port", str(port), "--workers", "1",
                             "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                             "--timeout-keep-alive", "60"], env, work / "web.log"))
        procs.append(_start([str(BIN / "formwright"), "relay"], env, work / "relay.log"))
        procs.append(_start([str(BIN / "formwright"), "workers", "run", "sheets"], env, work / "worker.log"))
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        auth = {"Authorization": f"Bearer {asyncio.run(_token(db_url))}"}
        form = httpx.post(f"{base}/api/v1/forms", headers=auth, json={
            "title": "Latency", "status": "open", "questions": [{"text": "Name", "mandatory": True}]}).json()
        r = httpx.post(f"{base}/api/v1/forms/{form['id']}/integrations", headers=auth, timeout=30,
                       json={"kind": "sheets", "config": {"spreadsheet": sid, "worksheet": WORKSHEET}})
        r.raise_for_status()

        seen: dict[str, float] = {}
        stop = False

        def watch() -> None:
            while not stop:
                now = time.monotonic()
                for row in fake.values(sid, WORKSHEET)[2:]:  # title row and hidden id row
                    if row and row[0] not in seen:
                        seen[row[0]] = now
                time.sleep(0.05)

        import threading

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        submitted = asyncio.run(_load(base, form["id"], form["questions"][0]["id"], args.rate, args.seconds))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not set(submitted) <= set(seen):
            time.sleep(0.2)
        stop = True
        rows = [row[0] for row in fake.values(sid, WORKSHEET)[2:] if row]
        missing = set(submitted) - set(seen)
        latencies = sorted(max(0.0, seen[rid] - t) for rid, t in submitted.items() if rid in seen)
        result: dict[str, Any] = {
            "rate_per_s": args.rate, "seconds": args.seconds, "submitted": len(submitted), "rows": len(rows),
            "duplicate_rows": len(rows) - len(set(rows)), "missing": len(missing),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
            "max_s": round(latencies[-1], 3) if latencies else None,
            "sheet_writes_max_per_window": fake.max_in_window(account.email, "write"),
            "quota_rejections": fake.quota_rejections,
        }
        print(json.dumps(result))
        if missing or result["duplicate_rows"]:
            sys.exit(1)
    finally:
        for p in procs:
            _stop(p)
        fake.stop()
        asyncio.run(dbutil.drop_database(db_url))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


if __name__ == "__main__":
    main()
