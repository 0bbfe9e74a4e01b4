"""Broker workers: consume an integration kind's work queue and deliver through the shared engine.

Per kind, on its own channel with a bounded prefetch (2 x the integration's batch size):
- collect up to `batch_size` messages (waiting at most WORKER_LINGER_SECONDS for the batch to fill);
- run them through webapp/deliveries/engine.py, which claims ledger rows (committed before any
  external call), calls the integration and records each result (committed);
- only then settle each message: republish it to the retry tier that matches when it is next due
  (when a row waits for a retry, or is in flight elsewhere) or to the dead-letter queue (when a row
  gave up), wait for the broker's confirm, and ack the original.
A message that is not a well-formed event is poison: it goes to the dead-letter queue with the
reason in its headers, and a ledger row it names is marked dead so the owner sees it and can retry.

A lost connection ends the session: whatever was in hand is not acked (the broker redelivers it and
the ledger absorbs the repeat) and the worker reconnects with back-off. On SIGTERM it stops
consuming, finishes the batch in hand, puts back (nack + requeue) what it had not started, and exits.

Run one kind per process: `formwright workers run sheets` (or `python -m integrations.runtime sheets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any
from uuid import UUID

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from webapp.db import create_engine
from webapp.deliveries import ledger
from webapp.deliveries.engine import BadEvent, DeliveryEngine, EventOutcome, check_event
from webapp.observability import run_process
from webapp.outbox import broker
from webapp.plugins import Registry, load_integrations
from webapp.settings import Settings, get_settings
from webapp.timeutil import utcnow

log = structlog.get_logger("integrations.runtime")

MAX_BACKOFF = 10.0
# Added by the broker on each dead-lettering; a copy starts afresh rather than growing them forever.
_BROKER_HEADERS = ("x-death", "x-first-death", "x-last-death")


class BrokerLost(Exception):
    """The connection went away: start a new session."""


class Worker:
    def __init__(self, settings: Settings, kinds: list[str], registry: Registry | None = None) -> None:
        if not settings.amqp_url:
            raise ValueError("Workers need AMQP_URL (amqp://user:password@host:5672/vhost).")
        self.registry = registry or load_integrations()
        missing = [k for k in kinds if self.registry.get(k) is None]
        if missing or not kinds:
            raise ValueError(f"Unknown integration kind(s): {', '.join(missing) or '(none given)'}; "
                             f"installed: {', '.join(self.registry.kinds()) or 'none'}")
        self.settings = settings
        self.kinds = kinds
        self.topology = broker.Topology.from_settings(settings)
        self.db = create_engine(settings)
        self.engine = DeliveryEngine(async_sessionmaker(self.db, expire_on_commit=False), settings, self.registry)
        self.acked = 0
        self._stop = asyncio.Event()
        self._connected = False

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        backoff = 0.5
        try:
            while not self._stop.is_set():
                self._connected = False
                try:
                    await self._session()
                except Exception as exc:  # the broker or the database went away; both heal
                    backoff = 0.5 if self._connected else backoff  # a fresh outage starts the back-off again
                    log.warning("worker_session_ended", kinds=self.kinds, error=f"{type(exc).__name__}: {exc}",
                                retry_in=backoff)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            await self.db.dispose()
            log.info("worker_stopped", kinds=self.kinds, acked=self.acked)

    async def _session(self) -> None:
        connection = await aio_pika.connect(self.settings.amqp_url, timeout=10)
        self._connected = True
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        try:
            async with asyncio.TaskGroup() as group:
                for kind in self.kinds:
                    group.create_task(self._consume(connection, kind, lost))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
        if lost.is_set() and not self._stop.is_set():
            raise BrokerLost("the broker connection or a channel closed")

    async def _consume(self, connection: AbstractConnection, kind: str, lost: asyncio.Event) -> None:
        integration = self.registry.integrations[kind]
        batch_size = max(1, int(getattr(integration, "batch_size", 1) or 1))
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # A channel the broker closed (a channel-level error) delivers nothing more: start afresh.
        channel.close_callbacks.add(lambda *_: lost.set())
        await channel.set_qos(prefetch_count=2 * batch_size)
        await broker.declare(channel, self.topology, [kind])
        queue = await channel.get_queue(self.topology.work_queue(kind), ensure=True)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def on_message(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)

        tag = await queue.consume(on_message)
        log.info("worker_consuming", kind=kind, queue=queue.name, prefetch=2 * batch_size)
        try:
            while not self._stop.is_set() and not lost.is_set():
                batch = await self._collect(inbox, batch_size, lost)
                if batch:
                    await self._handle(channel, kind, batch, lost)
        finally:
            if not channel.is_closed:
                # Stop the flow first, then hand back what was prefetched but not started.
                with contextlib.suppress(Exception):
                    await queue.cancel(tag, timeout=5)
                while not inbox.empty():
                    with contextlib.suppress(Exception):
                        await inbox.get_nowait().nack(requeue=True)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), 5)

    async def _collect(
        self, inbox: asyncio.Queue[AbstractIncomingMessage], size: int, lost: asyncio.Event
    ) -> list[AbstractIncomingMessage]:
        getter = asyncio.ensure_future(inbox.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        dropper = asyncio.ensure_future(lost.wait())
        await asyncio.wait([getter, stopper, dropper], return_when=asyncio.FIRST_COMPLETED)
        for task in (stopper, dropper):
            task.cancel()
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
            return []
        batch = [getter.result()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.worker_linger
        while len(batch) < size and not self._stop.is_set():
            if not inbox.empty():
                batch.append(inbox.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(inbox.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _handle(
        self, channel: AbstractChannel, kind: str, batch: list[AbstractIncomingMessage], lost: asyncio.Event
    ) -> None:
        good: list[tuple[AbstractIncomingMessage, dict[str, Any]]] = []
        for message in batch:
            try:
                good.append((message, check_event(broker.decode(message.body))))
            except (ValueError, BadEvent) as exc:
                await self._poison(channel, kind, message, str(exc))
        if not good:
            return
        outcomes = await self._process(kind, good, lost)
        if outcomes is None:  # stopping or disconnected while the database was down: hand them back
            for message, _ in good:
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)
            return
        for (message, event), outcome in zip(good, outcomes, strict=True):
            await self._settle(channel, kind, message, event, outcome)

    async def _process(
        self, kind: str, good: list[tuple[AbstractIncomingMessage, dict[str, Any]]], lost: asyncio.Event
    ) -> list[EventOutcome | str] | None:
        """Engine outcomes per message; a string is why that one event is poison. None: give them back."""
        backoff = 0.5
        while True:
            try:
                return list(await self.engine.process(kind, [e for _, e in good]))
            except Exception as exc:
                if not await self._database_ok():
                    log.warning("worker_database_unavailable", kind=kind, error=type(exc).__name__, retry_in=backoff)
                    if self._stop.is_set() or lost.is_set():
                        return None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                log.exception("worker_batch_failed", kind=kind, size=len(good))
                break
        # The database is fine, so some event in the batch is at fault: find it, one at a time.
        out: list[EventOutcome | str] = []
        for _, event in good:
            try:
                out.extend(await self.engine.process(kind, [event]))
            except Exception as exc:
                out.append(f"processing failed: {type(exc).__name__}: {exc}")
        return out

    async def _database_ok(self) -> bool:
        try:
            async with self.db.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
            return True
        except Exception:
            return False

    async def _settle(
        self, channel: AbstractChannel, kind: str, message: AbstractIncomingMessage, event: dict[str, Any],
        outcome: EventOutcome | str,
    ) -> None:
        if isinstance(outcome, str):
            await self._poison(channel, kind, message, outcome, event)
            return
        if outcome.dead:
            reason = "; ".join(f"{did}: {detail}" for did, detail in outcome.dead)
            await self._publish(channel, self.topology.dead_queue(kind), message, {"x-error": reason[:1000]})
        if outcome.recheck_in is not None:
            tier = self.topology.tier_for(outcome.recheck_in)
            attempt = int((message.headers or {}).get("x-attempt", 1) or 1) + 1
            await self._publish(channel, self.topology.retry_queue(kind, tier), message, {"x-attempt": attempt})
        await message.ack()
        self.acked += 1

    async def _poison(
        self, channel: AbstractChannel, kind: str, message: AbstractIncomingMessage, reason: str,
        event: Any = None,
    ) -> None:
        log.error("worker_poison_message", kind=kind, message_id=message.message_id, reason=reason[:300])
        await self._publish(channel, self.topology.dead_queue(kind), message, {"x-error": reason[:1000]})
        delivery_id = event.get("delivery_id") if isinstance(event, dict) else None
        if delivery_id is None:
            with contextlib.suppress(Exception):
                raw = broker.decode(message.body)
                delivery_id = raw.get("delivery_id") if isinstance(raw, dict) else None
        if delivery_id:
            with contextlib.suppress(ValueError, TypeError):
                async with self.engine.sessionmaker() as session, session.begin():
                    await ledger.mark_dead(session, UUID(str(delivery_id)),
                                           f"The message about this delivery could not be processed: {reason}",
                                           now=utcnow())
        await message.ack()
        self.acked += 1

    async def _publish(
        self, channel: AbstractChannel, queue: str, original: AbstractIncomingMessage, headers: dict[str, Any]
    ) -> None:
        """Copy a message to a queue through the default exchange and wait for the broker's confirm."""
        copy = aio_pika.Message(
            body=original.body, content_type=original.content_type, message_id=original.message_id,
            type=original.type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={**{k: v for k, v in (original.headers or {}).items() if not k.startswith(_BROKER_HEADERS)},
                     **headers, "x-routing-key": original.routing_key or ""},
        )
        await channel.default_exchange.publish(copy, routing_key=queue, mandatory=True,
                                               timeout=self.settings.publish_timeout)


async def run_worker(settings: Settings, kinds: list[str]) -> None:
    """Run until SIGTERM or SIGINT; then finish the batch in hand, requeue the rest and return."""
    from webapp.observability import run_until_signalled

    await run_until_signalled(Worker(settings, kinds), settings.metrics_port)


def main(argv: list[str] | None = None) -> None:
    from webapp.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    run_process(run_worker(settings, list(argv if argv is not None else sys.argv[1:])))


if __name__ == "__main__":
    main()
