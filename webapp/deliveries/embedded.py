"""Embedded delivery: with no broker (AMQP_URL unset), the web process delivers from the outbox.

One asyncio task per web process:
1. claims unprocessed outbox rows (`published_at IS NULL`; here it means "dispatched"), fans each
   out to the ledger for every installed integration kind and marks it dispatched, in one
   transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, so several web processes share the work);
2. runs the ledger rows that are due (new, retry time reached, owner-retried, or abandoned in
   flight) through the same engine, ledger and retry rules as the broker workers.
With no integration connected, each pass is two indexed queries that find nothing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import structlog
from sqlalchemy import false, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from webapp.deliveries import ledger
from webapp.deliveries.engine import DeliveryEngine
from webapp.outbox.models import OutboxEvent
from webapp.plugins import Registry
from webapp.settings import Settings
from webapp.timeutil import utcnow

log = structlog.get_logger("webapp.deliveries.embedded")
# Ledger rows run per pass, at most. A pass waits for all of them, and a claim older than
# DELIVERY_CLAIM_TIMEOUT_SECONDS counts as abandoned, so a pass of one-at-a-time sends stays short.
DUE_PER_PASS = 100


class EmbeddedDispatcher:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, registry: Registry | None = None
    ) -> None:
        self.engine = DeliveryEngine(sessionmaker, settings, registry)
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def dispatch_outbox(self) -> int:
        """Fan out one batch of undispatched events; returns how many rows it took."""
        kinds = self.engine.registry.kinds()
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            if session.get_bind().dialect.name == "sqlite":
                # Take the write lock first so two processes cannot dispatch the same rows.
                await session.execute(update(OutboxEvent).where(false()).values(attempts=OutboxEvent.attempts))
            stmt = (select(OutboxEvent.id, OutboxEvent.payload).where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id).limit(self.settings.outbox_batch_size))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await session.execute(stmt)).all()
            if not rows:
                return 0
            await ledger.fan_out(session, [payload for _, payload in rows], kinds, now=now)
            await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([r[0] for r in rows]))
                                  .values(published_at=now, attempts=OutboxEvent.attempts + 1))
        return len(rows)

    async def run_due(self) -> int:
        """Run every due ledger row once, kinds side by side (a slow kind does not hold up the others'
        calls in this pass; the next pass starts when all are done)."""
        kinds = self.engine.registry.kinds()
        if not kinds:
            return 0
        async with self.sessionmaker() as session:
            rows = await ledger.due(session, kinds, now=utcnow(), stale_after=self.settings.delivery_claim_timeout,
                                    limit=min(self.settings.outbox_batch_size, DUE_PER_PASS))
        by_kind: dict[str, list[Any]] = defaultdict(list)
        for delivery_id, kind in rows:
            by_kind[kind].append(delivery_id)
        await asyncio.gather(*(self.engine.run_deliveries(kind, ids) for kind, ids in by_kind.items()))
        return len(rows)

    async def run_once(self) -> int:
        return await self.dispatch_outbox() + await self.run_due()

    async def run(self) -> None:
        """Until cancelled: work while there is work, then wait for a wake-up or the poll interval."""
        log.info("embedded_delivery_started", kinds=self.engine.registry.kinds())
        while not self._stopping:
            self._wake.clear()  # before the pass: a wake-up that arrives during it is not lost
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup or a plugin bug: log it and keep going
                log.exception("embedded_delivery_error")
                busy = 0
            if busy:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_seconds)

    async def stop(self, task: asyncio.Task[None], grace: float = 5.0) -> None:
        """Let the pass in hand finish (its claims and records commit), then end the loop."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()  # abandoned claims go stale and are reconciled by the next run
            with suppress(asyncio.CancelledError):
                await task


def embedded_lifespan(settings: Settings, engine: AsyncEngine) -> list[Callable[[Any], AbstractAsyncContextManager[None]]]:
    """The app lifespan hook that runs the dispatcher, or nothing when a broker (or a setting) says no."""
    if settings.amqp_url or not settings.embedded_delivery:
        return []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        dispatcher = EmbeddedDispatcher(async_sessionmaker(engine, expire_on_commit=False), settings)
        app.state.delivery_dispatcher = dispatcher
        task = asyncio.create_task(dispatcher.run(), name="embedded-delivery")
        try:
            yield
        finally:
            await dispatcher.stop(task)

    return [lifespan]
