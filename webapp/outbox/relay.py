"""`formwright relay`: publishes outbox rows to RabbitMQ, each exactly once as far as it can tell.

One pass: claim a batch of unpublished rows (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
relays share the work and never publish the same row at the same time), publish them all on a
channel with publisher confirms (`mandatory`, persistent, message_id = event id, with a timeout),
and mark published only the rows the broker confirmed, in the same transaction. A row whose
publish was returned unroutable, nacked or timed out stays unpublished and is tried again.

What can still happen is a duplicate: the relay dies after the broker confirmed and before the
mark committed (or the database crashes before flushing a mark: the relay's commits do not wait for
the flush), and a later pass publishes the row again. Consumers absorb that in the ledger (one row
per integration and event).

It wakes on `NOTIFY formwright_outbox` (PostgreSQL; any writer may send it) and otherwise polls
every OUTBOX_POLL_SECONDS. The submission transaction deliberately does not NOTIFY: PostgreSQL
serialises committing transactions that notified on a database-wide lock held through the commit
flush, which would cap submissions at roughly one per disk flush. While there is a backlog the
relay does not wait between passes, and while rows keep arriving it looks again after BUSY_POLL
seconds, so the poll interval costs latency only when idle.

A lost broker connection is survived: the pass fails, nothing is marked, and the relay reconnects
with back-off and carries on where the table says it is.

Every DELIVERY_CLAIM_TIMEOUT_SECONDS (at least 5 s, at most 5 min) it also sweeps the ledger for
deliveries whose message was lost on the broker side (see `sweep`), so the broker path heals
itself the way the embedded dispatcher's due-scan does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import NamedTuple

import aio_pika
import aiormq.abc
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError
from sqlalchemy import Text, cast, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.db import create_engine
from webapp.deliveries import ledger
from webapp.outbox import broker
from webapp.outbox.models import OutboxEvent
from webapp.plugins import load_integrations
from webapp.settings import Settings
from webapp.timeutil import utcnow

log = structlog.get_logger("webapp.outbox.relay")

NOTIFY_CHANNEL = "formwright_outbox"
MAX_BACKOFF = 10.0
COMPLAIN_EVERY = 60.0  # seconds between log lines about the same stuck row
BUSY_POLL = 0.1  # seconds between passes while rows keep arriving


class Claimed(NamedTuple):
    """An outbox row taken for publishing, with its message ready."""

    id: int
    message: broker.Outgoing


class BrokerLost(Exception):
    """The connection or channel went away mid-pass: reconnect."""


class Relay:
    def __init__(self, settings: Settings, kinds: list[str] | None = None) -> None:
        if not settings.amqp_url:
            raise ValueError("The relay needs AMQP_URL (amqp://user:password@host:5672/vhost).")
        self.settings = settings
        self.topology = broker.Topology.from_settings(settings)
        self.kinds = kinds if kinds is not None else load_integrations().kinds()
        # The mark need not wait for its WAL flush: if a crash loses it, the rows are published
        # again and the ledger absorbs the duplicates, as after a relay that dies before its commit.
        self.db = create_engine(settings, pool=True, server_settings={"synchronous_commit": "off"})
        self.sessionmaker = async_sessionmaker(self.db, expire_on_commit=False)
        self.published = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._complained: dict[int, float] = {}
        self._sweep_every = min(max(settings.delivery_claim_timeout, 5.0), 300.0)
        self._connected = False

    def stop(self) -> None:
        """Finish the pass in hand (publish and mark), then return from `run`."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if self.db.dialect.name == "postgresql" else None
        backoff = 0.5
        try:
            while not self._stop.is_set():
                self._connected = False
                try:
                    await self._connected_loop()
                except (OSError, ConnectionError, TimeoutError, BrokerLost, aio_pika.exceptions.AMQPError) as exc:
                    backoff = 0.5 if self._connected else backoff  # a fresh outage starts the back-off again
                    log.warning("relay_broker_unavailable", error=f"{type(exc).__name__}: {exc}",
                                retry_in=backoff)
                    await self._backoff(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                except Exception as exc:  # the database went away, most likely: same cure
                    backoff = 0.5 if self._connected else backoff
                    log.error("relay_pass_failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
                    await self._backoff(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await self.db.dispose()
            log.info("relay_stopped", published=self.published)

    async def _connected_loop(self) -> None:
        connection = await aio_pika.connect(self.settings.amqp_url, timeout=self.settings.publish_timeout)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await broker.declare(channel, self.topology, self.kinds)
            log.info("relay_connected", exchange=self.topology.exchange, kinds=self.kinds)
            self._connected = True
            next_sweep = time.monotonic() + self._sweep_every
            while not self._stop.is_set():
                self._wake.clear()  # before the pass: a wake-up that arrives during it is not lost
                if time.monotonic() >= next_sweep:
                    await self.sweep(channel, exchange)
                    next_sweep = time.monotonic() + self._sweep_every
                taken, failed = await self.publish_batch(exchange)
                if taken == self.settings.outbox_batch_size and not failed:
                    continue  # a backlog: go straight on
                if connection.is_closed:
                    raise BrokerLost("the connection closed")
                # Rows just now: more are likely coming, so look again soon rather than after a
                # whole poll interval (which added up to a second to every delivery under load).
                busy = taken > failed  # some rows went out (failing ones wait the full interval)
                await self._sleep(min(BUSY_POLL, self.settings.outbox_poll_seconds) if busy
                                  else self.settings.outbox_poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)

    async def publish_batch(self, exchange: AbstractExchange) -> tuple[int, int]:
        """One pass; returns (rows taken, rows that failed to publish)."""
        channel = await self._underlay(exchange)
        async with self.sessionmaker() as session, session.begin():
            rows = await self._claim(session)
            if not rows:
                return 0, 0
            results = await asyncio.gather(*(self._publish(channel, exchange, row.message) for row in rows),
                                           return_exceptions=True)
            ok = [row.id for row, r in zip(rows, results, strict=True) if r is None]
            failed = [(row.id, r) for row, r in zip(rows, results, strict=True) if r is not None]
            now = utcnow()
            if ok:
                await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ok))
                                      .values(published_at=now, attempts=OutboxEvent.attempts + 1))
            # Counted only when the broker refused the message itself (returned, nacked, no confirm in
            # time): such a row then waits behind fresh ones. A dropped connection is nobody's fault.
            refused = [row_id for row_id, exc in failed if isinstance(exc, PublishError | DeliveryError | TimeoutError)]
            if refused:
                await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(refused))
                                      .values(attempts=OutboxEvent.attempts + 1))
        self.published += len(ok)
        if failed:
            lost = [exc for _, exc in failed if not isinstance(exc, PublishError | DeliveryError)]
            self._complain(failed)
            if lost:  # the connection, not the message: reconnect (the rows stay unpublished)
                raise BrokerLost(f"{len(lost)} publishes failed: {type(lost[0]).__name__}: {lost[0]}")
        return len(rows), len(failed)

    async def sweep(self, channel: AbstractChannel, exchange: AbstractExchange) -> int:
        """Announce again (as delivery.retry) the ledger rows whose message was lost.

        Only for kinds whose work queue is empty and consumed: then an overdue row has no message
        waiting anywhere. (With a backlog or no worker, its message is most likely still queued.)
        A copy that was not needed is absorbed by the ledger like any duplicate."""
        from webapp.deliveries.service import retry_event

        idle = []
        for kind in self.kinds:
            declared = await channel.declare_queue(self.topology.work_queue(kind), passive=True)
            if declared.declaration_result.message_count == 0 and declared.declaration_result.consumer_count:
                idle.append(kind)
        if not idle:
            return 0
        now = utcnow()
        async with self.sessionmaker() as session:
            rows = await ledger.overdue(session, idle, now=now, grace=self.settings.delivery_claim_timeout, limit=500)
        underlay = await self._underlay(exchange)
        for delivery, kind in rows:
            await self._publish(underlay, exchange, broker.event_message(retry_event(delivery, kind, occurred_at=now)))
        if rows:
            log.warning("relay_reannounced_lost_deliveries", count=len(rows), kinds=sorted({k for _, k in rows}))
        return len(rows)

    def _complain(self, failed: list[tuple[int, BaseException]]) -> None:
        """Log each failing row, but one that keeps failing at most once a minute."""
        now = time.monotonic()
        for row_id, exc in failed:
            if now - self._complained.get(row_id, -COMPLAIN_EVERY) >= COMPLAIN_EVERY:
                self._complained[row_id] = now
                log.error("relay_publish_failed", outbox_id=row_id, error=f"{type(exc).__name__}: {exc}")
        if len(self._complained) > 10_000:
            self._complained.clear()

    async def _claim(self, session: AsyncSession) -> list[Claimed]:
        """Fresh rows first, in order; rows that failed before only fill what room is left, so a
        row that cannot be routed never holds up the ones behind it.

        The payload comes back as the JSON text the database holds and goes out as it is, not
        decoded into a dict only to be encoded again. With `broker.publish`, that took the relay's
        CPU per event from 125-133 to 101-105 µs (bench/relay_bench.py)."""
        rows: list[Claimed] = []
        for fresh in (True, False):
            room = self.settings.outbox_batch_size - len(rows)
            if room <= 0:
                break
            stmt = (select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.event_type,
                           OutboxEvent.payload["kind"].as_string(), cast(OutboxEvent.payload, Text))
                    .where(OutboxEvent.published_at.is_(None),
                           OutboxEvent.attempts == 0 if fresh else OutboxEvent.attempts > 0)
                    .order_by(OutboxEvent.id).limit(room))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows += [Claimed(row_id, broker.outgoing(str(event_id), event_type, kind, payload.encode()))
                     for row_id, event_id, event_type, kind, payload in (await session.execute(stmt)).all()]
        return rows

    @staticmethod
    async def _underlay(exchange: AbstractExchange) -> aiormq.abc.AbstractChannel:
        """The channel under aio-pika's, which `broker.publish` writes to."""
        try:
            return await exchange.channel.get_underlay_channel()
        except ChannelInvalidStateError as exc:  # a RuntimeError, not an AMQPError: name it for `run`
            raise BrokerLost(f"the channel is closed: {exc}") from exc

    async def _publish(self, channel: aiormq.abc.AbstractChannel, exchange: AbstractExchange,
                       message: broker.Outgoing) -> None:
        await broker.publish(channel, exchange.name, message, within=self.settings.publish_timeout)

    async def _backoff(self, seconds: float) -> None:
        """Wait before reconnecting; only a stop cuts it short (wake-ups would make it spin)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _listen(self) -> None:
        """LISTEN for wake-ups on a connection of its own; polling covers any gap."""
        url = make_url(self.settings.database_url).set(drivername="postgresql")
        while not self._stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda *_, closed=closed: closed.set())
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                log.info("relay_listening", channel=NOTIFY_CHANNEL)
                await closed.wait()  # until the connection drops (then reconnect) or the task is cancelled
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay_listen_failed", error=type(exc).__name__)
                await asyncio.sleep(2)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)


async def run_relay(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then finish the pass in hand and return."""
    from webapp.observability import run_until_signalled

    await run_until_signalled(Relay(settings), settings.metrics_port)
