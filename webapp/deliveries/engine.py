"""Runs deliveries through an integration: fan out, claim, call `handle`, record.

The same engine serves both paths:
- broker workers (integrations/runtime.py) call `process(kind, events)` with a batch of messages
  and ack each message only after this returns (its records are committed by then);
- the embedded dispatcher (webapp/deliveries/embedded.py) fans out from the outbox table and calls
  `run_deliveries(kind, ids)` for rows that are due.

Every claim is committed before the integration is called, and each chunk's results are committed
right after it returns. The integration is trusted to return one Result per item; an exception is
a temporary error (retried), and a call that outlives the handler timeout is an unknown outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.deliveries import ledger
from webapp.deliveries.ledger import Claim, Recorded
from webapp.deliveries.models import DeliveryState, FormIntegration
from webapp.forms.definition import questions_for
from webapp.forms.models import Form
from webapp.outbox.models import OutboxEvent
from webapp.plugins import FormContext, Integration, Outcome, Registry, Result, Work, decode_config, load_integrations
from webapp.settings import Settings, SettingsError
from webapp.timeutil import utcnow

log = structlog.get_logger("webapp.deliveries.engine")

DELIVERY_RETRY = "delivery.retry"


class BadEvent(ValueError):
    """An event payload without the fields the pipeline needs (a poison message)."""


def check_event(event: Any) -> dict[str, Any]:
    """The fields the engine relies on, with their types; anything else is the integration's business."""
    if not isinstance(event, dict):
        raise BadEvent("the event is not a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str) or not (kind.startswith("response.") or kind == DELIVERY_RETRY):
        raise BadEvent(f"unknown event type {kind!r}")
    needed = ["event_id", "form_id"] + (["delivery_id"] if kind == DELIVERY_RETRY else [])
    for key in needed:
        try:
            UUID(str(event.get(key)))
        except ValueError:
            raise BadEvent(f"{key} is missing or not a UUID") from None
    return event


@dataclass(slots=True)
class EventOutcome:
    """What a broker worker must do with one message once its records are committed."""

    event_id: str
    recheck_in: float | None = None  # look at this event again after that many seconds
    dead: list[tuple[UUID, str]] = field(default_factory=list)  # gave up in this pass
    states: dict[UUID, DeliveryState] = field(default_factory=dict)


class DeliveryEngine:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, registry: Registry | None = None
    ) -> None:
        if settings.delivery_claim_timeout <= settings.delivery_handler_timeout:
            raise SettingsError("DELIVERY_CLAIM_TIMEOUT_SECONDS must be longer than DELIVERY_HANDLER_TIMEOUT_SECONDS, "
                                "or a call still running would look abandoned and be taken over.")
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.registry = registry or load_integrations()

    # ---- broker path --------------------------------------------------------------------------

    async def process(self, kind: str, events: Sequence[dict[str, Any]]) -> list[EventOutcome]:
        """Deliver a batch of events (already checked with `check_event`) through one kind."""
        integration = self._integration(kind)
        now = utcnow()
        ids_by_event: dict[str, list[UUID]] = {}
        async with self.sessionmaker() as session, session.begin():
            await ledger.lock_for_write(session)
            # The whole batch in a few statements: per-event queries cost more than the deliveries.
            await ledger.fan_out(session, events, [kind], now=now)
            retries = {UUID(e["delivery_id"]) for e in events if e["type"] == DELIVERY_RETRY}
            fresh = {UUID(e["event_id"]) for e in events if e["type"] != DELIVERY_RETRY}
            by_event: dict[UUID, list[UUID]] = {}
            by_id: set[UUID] = set()
            for event_id, did in await ledger.deliveries_for(session, kind, event_ids=fresh, delivery_ids=retries):
                by_event.setdefault(event_id, []).append(did)
                by_id.add(did)
            for event in events:
                if event["type"] == DELIVERY_RETRY:
                    did = UUID(event["delivery_id"])
                    ids = [did] if did in by_id else []
                else:
                    ids = by_event.get(UUID(event["event_id"]), [])
                ids_by_event[event["event_id"]] = ids
            claims, busy = await ledger.claim(session, [i for ids in ids_by_event.values() for i in ids],
                                              now=now, stale_after=self.settings.delivery_claim_timeout)
        payloads = {UUID(e["event_id"]): e for e in events if e["type"] != DELIVERY_RETRY}
        recorded = await self._run(integration, claims, payloads)
        return self._outcomes(ids_by_event, claims, busy, recorded)

    def _outcomes(
        self, ids_by_event: dict[str, list[UUID]], claims: list[Claim], busy: list[ledger.Busy],
        recorded: dict[UUID, Recorded | None],
    ) -> list[EventOutcome]:
        now = utcnow()
        claimed = {c.delivery_id for c in claims}
        busy_by_id = {b.delivery_id: b for b in busy}
        out = []
        for event_id, ids in ids_by_event.items():
            outcome = EventOutcome(event_id)
            recheck: list[datetime] = []
            for did in ids:
                if did in claimed:
                    rec = recorded.get(did)
                    if rec is None:  # the claim was taken over; look again once that one is done
                        recheck.append(now)
                        continue
                    outcome.states[did] = rec.state
                    if rec.state == DeliveryState.DEAD:
                        outcome.dead.append((did, rec.detail))
                    elif rec.next_attempt_at is not None:
                        recheck.append(rec.next_attempt_at)
                elif did in busy_by_id:
                    b = busy_by_id[did]
                    outcome.states[did] = b.state
                    if b.recheck_at is not None:
                        recheck.append(b.recheck_at)
            if recheck:
                outcome.recheck_in = max(0.0, (min(recheck) - now).total_seconds())
            out.append(outcome)
        return out

    # ---- embedded path ------------------------------------------------------------------------

    async def run_deliveries(self, kind: str, delivery_ids: Sequence[UUID]) -> dict[UUID, Recorded | None]:
        """Claim and run these rows (those still claimable) through their integration."""
        integration = self._integration(kind)
        async with self.sessionmaker() as session, session.begin():
            claims, _ = await ledger.claim(session, delivery_ids, now=utcnow(),
                                           stale_after=self.settings.delivery_claim_timeout)
        return await self._run(integration, claims, {})

    # ---- shared -------------------------------------------------------------------------------

    def _integration(self, kind: str) -> Integration:
        integration = self.registry.get(kind)
        if integration is None:
            raise LookupError(f"no integration of kind {kind!r} is installed (have: {', '.join(self.registry.kinds())})")
        return integration

    async def _run(
        self, integration: Integration, claims: list[Claim], payloads: dict[UUID, dict[str, Any]]
    ) -> dict[UUID, Recorded | None]:
        if not claims:
            return {}
        works, early = await self._prepare(integration, claims, payloads)
        recorded: dict[UUID, Recorded | None] = {}
        by_id = {c.delivery_id: c for c in claims}
        if early:
            recorded.update(await self._record([(by_id[d], r) for d, r in early]))
        size = max(1, int(getattr(integration, "batch_size", 1) or 1))
        for start in range(0, len(works), size):
            chunk = works[start:start + size]
            results = await self._call(integration, chunk)
            recorded.update(await self._record([(by_id[w.delivery_id], r) for w, r in zip(chunk, results, strict=True)]))
        return recorded

    async def _prepare(
        self, integration: Integration, claims: list[Claim], payloads: dict[UUID, dict[str, Any]]
    ) -> tuple[list[Work], list[tuple[UUID, Result]]]:
        """Build Work items; a row that cannot be worked (bad config, event gone) fails at once."""
        async with self.sessionmaker() as session:
            configs = dict((await session.execute(
                select(FormIntegration.id, FormIntegration.config)
                .where(FormIntegration.id.in_({c.integration_id for c in claims})))).all())
            missing = {c.event_id for c in claims} - set(payloads)
            if missing:
                rows = await session.execute(
                    select(OutboxEvent.event_id, OutboxEvent.payload).where(OutboxEvent.event_id.in_(missing)))
                payloads = {**payloads, **dict(rows.all())}
            form_ids = {UUID(p["form_id"]) for p in payloads.values()}
            contexts = await self._contexts(session, form_ids)
        works: list[Work] = []
        early: list[tuple[UUID, Result]] = []
        decoded: dict[UUID, Any] = {}
        for c in claims:
            event = payloads.get(c.event_id)
            if c.integration_id not in configs:
                early.append((c.delivery_id, Result(Outcome.FAILED, "The integration was removed.")))
                continue
            if event is None:
                early.append((c.delivery_id, Result(Outcome.FAILED, "The event is no longer stored.")))
                continue
            context = contexts.get(UUID(event["form_id"]))
            if context is None:
                early.append((c.delivery_id, Result(Outcome.FAILED, "The form was deleted.")))
                continue
            if c.integration_id not in decoded:
                config, errors = decode_config(integration, configs[c.integration_id])
                decoded[c.integration_id] = config if not errors else errors
            config = decoded[c.integration_id]
            if isinstance(config, list):
                detail = "; ".join(f"{e.field}: {e.message}" for e in config)
                early.append((c.delivery_id, Result(Outcome.FAILED, f"The integration's settings are invalid ({detail}).")))
                continue
            works.append(Work(
                delivery_id=c.delivery_id, integration_id=c.integration_id, config=config, event=event,
                form=context, attempt=c.attempt, previous_claim_at=c.previous_claim_at,
                previous_external_ref=c.previous_external_ref))
        return works, early

    @staticmethod
    async def _contexts(session: AsyncSession, form_ids: set[UUID]) -> dict[UUID, FormContext]:
        out = {}
        for form in (await session.scalars(select(Form).where(Form.id.in_(form_ids)))).all():
            questions = await questions_for(session, form.id, form.version)
            out[form.id] = FormContext(form_id=form.id, title=form.title, version=form.version, questions=questions)
        return out

    async def _call(self, integration: Integration, chunk: list[Work]) -> list[Result]:
        timeout = self.settings.delivery_handler_timeout
        try:
            results = list(await asyncio.wait_for(integration.handle(chunk), timeout))
        except TimeoutError:
            log.warning("delivery_handler_timeout", kind=integration.kind, items=len(chunk), seconds=timeout)
            return [Result(Outcome.UNKNOWN, f"No answer within {timeout:g} seconds; the outcome is not known.")] * len(chunk)
        except Exception as exc:  # an integration bug must not stop the pipeline
            log.exception("delivery_handler_error", kind=integration.kind, items=len(chunk))
            detail = f"The integration raised {type(exc).__name__}: {exc}"
            return [Result(Outcome.RETRY, detail)] * len(chunk)
        if len(results) != len(chunk) or not all(isinstance(r, Result) for r in results):
            log.error("delivery_handler_bad_results", kind=integration.kind, items=len(chunk), results=len(results))
            # What happened to each item cannot be told apart: reconcile before any resend.
            bad = Result(Outcome.UNKNOWN, "The integration returned a malformed answer; the outcome is not known.")
            results = [r if isinstance(r, Result) else bad for r in results[:len(chunk)]]
            results += [bad] * (len(chunk) - len(results))
        return results

    async def _record(self, pairs: list[tuple[Claim, Result]]) -> dict[UUID, Recorded | None]:
        now = utcnow()
        out: dict[UUID, Recorded | None] = {}
        async with self.sessionmaker() as session, session.begin():
            await ledger.lock_for_write(session)
            for claim, result in pairs:
                rec = await ledger.record(session, claim, result, now=now, tiers=self.settings.retry_tiers,
                                          max_attempts=self.settings.delivery_max_attempts)
                out[claim.delivery_id] = rec
        for claim, result in pairs:
            rec = out[claim.delivery_id]
            log.info("delivery_recorded", delivery_id=str(claim.delivery_id), attempt=claim.attempt,
                     outcome=result.outcome.value, state=rec.state.value if rec else "claim_lost")
        return out
