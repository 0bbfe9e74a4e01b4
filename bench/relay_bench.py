"""Relay throughput: outbox rows published to RabbitMQ with publisher confirms, per second.

    .venv/bin/python -m bench.relay_bench                      # 20,000 events, the default batch, one relay
    .venv/bin/python -m bench.relay_bench --events 50000 --batch 500 --relays 2

Uses a throwaway PostgreSQL database (as the tests do) and a throwaway RabbitMQ vhost, fills the
outbox, then times relays (in this process, each with its own connection and database pool) until
every row is marked published, and checks the work queue holds exactly one message per event.
Prints the figure; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import time
from dataclasses import replace

import aio_pika
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from tests import dbutil
from webapp.db import create_engine
from webapp.observability import run_process
from webapp.outbox import broker
from webapp.outbox.events import RESPONSE_SUBMITTED, response_event
from webapp.outbox.models import OutboxEvent
from webapp.outbox.relay import Relay
from webapp.settings import Settings
from webapp.timeutil import utcnow

AMQP_BASE = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")


def _answers() -> list[dict[str, object]]:
    # Ten answers, about the size of a real submission.
    return [{"question_id": str(uuid7()), "kind": "short_text", "value": f"answer {i}", "text": f"answer {i}"}
            for i in range(10)]


async def _fill(settings: Settings, n: int) -> None:
    engine = create_engine(settings)
    form_id = uuid7()
    try:
        async with engine.begin() as conn:
            for start in range(0, n, 5000):
                rows = []
                for _ in range(min(5000, n - start)):
                    event = response_event(RESPONSE_SUBMITTED, form_id=form_id, form_version=1, response_id=uuid7(),
                                           submitted_at=utcnow(), answers=_answers())
                    rows.append({"event_id": event["event_id"], "event_type": event["type"], "form_id": form_id,
                                 "response_id": event["response_id"], "payload": event})
                await conn.execute(insert(OutboxEvent), rows)
        # A server with autovacuum on (the default) analyzes a table after such a bulk insert; this
        # machine's has it off. Without statistics the planner's first custom plans for the claim
        # sort the whole backlog (about 150 ms each, five times per connection) instead of walking
        # the index in order, and that is not the relay's speed.
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE outbox_events"))
    finally:
        await engine.dispose()


async def _unpublished(conn: AsyncConnection) -> int:
    return int(await conn.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))) or 0)


async def _depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def _rabbitmqctl(*args: str) -> None:
    await asyncio.to_thread(subprocess.run, ["rabbitmqctl", *args], check=True, capture_output=True)


async def main(events: int, batch: int, relays: int) -> None:
    vhost = f"fw_bench_{secrets.token_hex(3)}"
    await _rabbitmqctl("add_vhost", vhost)
    await _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = await dbutil.create_database("postgres")
    try:
        await dbutil.aupgrade(url)
        settings = replace(Settings(), env="test", database_url=url, amqp_url=f"{AMQP_BASE}/{vhost}",
                           outbox_batch_size=batch, outbox_poll_seconds=0.05, db_pool_size=2)
        await _fill(settings, events)
        workers = [Relay(settings, kinds=["bench"]) for _ in range(relays)]
        # One connection, opened before the clock starts, watches the backlog: the relays run in
        # this process, so a connect per poll would take CPU from them.
        watcher = create_engine(settings, pool=False)
        async with watcher.connect() as conn:
            started = time.perf_counter()
            tasks = [asyncio.create_task(r.run()) for r in workers]
            while await _unpublished(conn):
                await conn.commit()  # not idle in a transaction between looks
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
        await watcher.dispose()
        for r in workers:
            r.stop()
        await asyncio.gather(*tasks)
        depth = await _depth(settings.amqp_url, broker.Topology.from_settings(settings).work_queue("bench"))
        print(f"relay: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s "
              f"({relays} relay(s), batch {batch}, publisher confirms, mandatory, persistent); "
              f"queue holds {depth} messages")
    finally:
        await dbutil.drop_database(url)
        await _rabbitmqctl("delete_vhost", vhost)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=Settings().outbox_batch_size, help="default: OUTBOX_BATCH_SIZE's")
    parser.add_argument("--relays", type=int, default=1)
    args = parser.parse_args()
    run_process(main(args.events, args.batch, args.relays))  # the loop `formwright relay` runs on
