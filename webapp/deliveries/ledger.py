"""The delivery ledger: one row per (integration, event), and the only code that moves its state.

    pending ──claim──► in_flight ──record──► delivered | failed | unknown | dead
       ▲                   │                  (retry → pending; unknown → reconciled, both due later)
       └───────────────────┘

Rules every caller relies on:
- A row is claimed (in_flight, attempts+1, claimed_at=now) and that claim is committed BEFORE the
  external call; the result is recorded after it, in a second transaction.
- `claimed_at` stays set only while the effect of an attempt is not known to be nil (in flight,
  or recorded unknown). A later claim hands it to the handler as `previous_claim_at`, so the
  handler looks the earlier attempt up instead of sending again. A retry or a permanent failure
  clears it: those outcomes promise that nothing took effect.
- delivered, failed and dead rows are never claimed again by a message; only an owner's retry
  (webapp/deliveries/service.py:retry_delivery) moves failed/dead back to pending.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, false, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from webapp.deliveries.models import Delivery, DeliveryState, FormIntegration
from webapp.plugins import Outcome, Result

FINAL_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DEAD})
MAX_ERROR_CHARS = 2000
# A retry message may come back a little before its row's time (clocks, rounding): close enough.
DUE_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Claim:
    """A row this process now holds in flight."""

    delivery_id: UUID
    integration_id: UUID
    event_id: UUID
    attempt: int
    claimed_at: datetime
    previous_claim_at: datetime | None
    previous_external_ref: str | None


@dataclass(frozen=True, slots=True)
class Busy:
    """A row that could not be claimed now, and when it is worth looking again (None: never)."""

    delivery_id: UUID
    state: DeliveryState
    recheck_at: datetime | None


@dataclass(frozen=True, slots=True)
class Recorded:
    delivery_id: UUID
    state: DeliveryState
    next_attempt_at: datetime | None
    detail: str


async def lock_for_write(session: AsyncSession) -> None:
    """SQLite has no row locks: make a write the transaction's first statement, which takes the
    database write lock up front, so the reads that follow cannot race another process's claim."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(Delivery).where(false()).values(attempts=Delivery.attempts))


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


_FAN_OUT_CHUNK = 500  # rows per INSERT: well inside SQLite's limit on bound parameters


async def fan_out(session: AsyncSession, events: Sequence[dict[str, Any]], kinds: Collection[str], *,
                  now: datetime) -> int:
    """One pending row per enabled integration of these kinds on each event's form, if absent: one
    query for the integrations, one insert per 500 rows.

    Idempotent: a redelivered or republished event finds its rows and adds nothing."""
    events = [e for e in events if str(e["type"]).startswith("response.")]  # retries name existing rows
    if not kinds or not events:
        return 0
    found = (await session.execute(
        select(FormIntegration.id, FormIntegration.form_id).where(
            FormIntegration.form_id.in_({UUID(e["form_id"]) for e in events}),
            FormIntegration.enabled.is_(True), FormIntegration.kind.in_(list(kinds))).order_by(FormIntegration.id)
    )).all()
    by_form: dict[UUID, list[UUID]] = {}
    for iid, form_id in found:
        by_form.setdefault(form_id, []).append(iid)
    rows = []
    for event in events:
        form_id = UUID(event["form_id"])
        response_id = UUID(event["response_id"]) if event.get("response_id") else None
        rows += [{
            "id": uuid7(), "integration_id": iid, "form_id": form_id, "response_id": response_id,
            "event_id": UUID(event["event_id"]), "event_type": event["type"], "state": DeliveryState.PENDING,
            "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now,
        } for iid in by_form.get(form_id, ())]
    added = 0
    for start in range(0, len(rows), _FAN_OUT_CHUNK):
        stmt = _insert(session)(Delivery).values(rows[start:start + _FAN_OUT_CHUNK]).on_conflict_do_nothing(
            index_elements=[Delivery.integration_id, Delivery.event_id])
        added += max((await session.execute(stmt)).rowcount or 0, 0)
    return added


async def deliveries_for(
    session: AsyncSession, kind: str, *, event_ids: Collection[UUID] = (), delivery_ids: Collection[UUID] = ()
) -> list[tuple[UUID, UUID]]:
    """(event id, delivery id) of this kind's rows for these events, and for these named rows."""
    found: list[tuple[UUID, UUID]] = []
    for column, ids in ((Delivery.event_id, event_ids), (Delivery.id, delivery_ids)):
        if ids:
            stmt = (select(Delivery.event_id, Delivery.id)
                    .join(FormIntegration, FormIntegration.id == Delivery.integration_id)
                    .where(FormIntegration.kind == kind, column.in_(list(ids))).order_by(Delivery.id))
            found += [(row[0], row[1]) for row in (await session.execute(stmt)).all()]
    return found


async def claim(
    session: AsyncSession, delivery_ids: Sequence[UUID], *, now: datetime, stale_after: float,
) -> tuple[list[Claim], list[Busy]]:
    """Move claimable rows to in_flight. The caller commits before calling out.

    Claimable: pending and unknown rows that are due (unknown ones are looked up, not resent), and
    in_flight rows with a claim older than `stale_after` seconds (their process died mid-call).
    Everything else is reported busy, with the time it is worth looking again (None: never)."""
    if not delivery_ids:
        return [], []
    await lock_for_write(session)
    stmt = (select(Delivery, FormIntegration.enabled)
            .join(FormIntegration, FormIntegration.id == Delivery.integration_id)
            .where(Delivery.id.in_(list(delivery_ids))).order_by(Delivery.id))
    if session.get_bind().dialect.name == "postgresql":
        # A row another process is claiming right now is skipped, not waited for: it is busy.
        stmt = stmt.with_for_update(of=Delivery, skip_locked=True)
    rows = (await session.execute(stmt)).all()
    seen = {row[0].id for row in rows}
    stale_before = now - timedelta(seconds=stale_after)
    due_before = now + DUE_TOLERANCE
    claims: list[Claim] = []
    busy = [Busy(did, DeliveryState.IN_FLIGHT, now + timedelta(seconds=1)) for did in delivery_ids
            if did not in seen]
    disabled: list[UUID] = []
    for delivery, enabled in rows:
        state = DeliveryState(delivery.state)
        if state in FINAL_STATES:
            busy.append(Busy(delivery.id, state, None))
            continue
        if state == DeliveryState.IN_FLIGHT and delivery.claimed_at and delivery.claimed_at > stale_before:
            busy.append(Busy(delivery.id, state, delivery.claimed_at + timedelta(seconds=stale_after)))
            continue
        if state in (DeliveryState.PENDING, DeliveryState.UNKNOWN):
            due_at = delivery.next_attempt_at
            if due_at is None and state == DeliveryState.UNKNOWN:
                busy.append(Busy(delivery.id, state, None))  # out of attempts: rests until an owner retries
                continue
            if due_at is not None and due_at > due_before:
                busy.append(Busy(delivery.id, state, due_at))
                continue
        if not enabled:
            disabled.append(delivery.id)
            busy.append(Busy(delivery.id, DeliveryState.FAILED, None))
            continue
        claims.append(Claim(delivery.id, delivery.integration_id, delivery.event_id, delivery.attempts + 1, now,
                            delivery.claimed_at, delivery.external_ref))
    if disabled:
        # An owner who switched an integration off expects nothing more to be sent through it;
        # failed (not silently pending) shows why, and their retry sends it once re-enabled.
        await session.execute(update(Delivery).where(Delivery.id.in_(disabled)).values(
            state=DeliveryState.FAILED, last_error="The integration was disabled before this was delivered.",
            next_attempt_at=None, updated_at=now))
    if claims:
        # One statement for the batch. The rows are locked by this transaction, so attempts + 1 is
        # each claim's `attempt`; the loaded objects are not used again, so nothing to synchronise.
        await session.execute(update(Delivery).where(Delivery.id.in_([c.delivery_id for c in claims])).values(
            state=DeliveryState.IN_FLIGHT, attempts=Delivery.attempts + 1, claimed_at=now, next_attempt_at=None,
            updated_at=now).execution_options(synchronize_session=False))
    return claims, busy


def retry_delay(attempt: int, tiers: Sequence[int], retry_after: float | None = None) -> int:
    """The tier for the n-th failed attempt (1-based), at least what the remote side asked for."""
    delay = tiers[min(attempt, len(tiers)) - 1]
    if retry_after and retry_after > delay:
        delay = next((t for t in tiers if t >= retry_after), tiers[-1])
    return delay


def _error(detail: str) -> str:
    return detail[:MAX_ERROR_CHARS]


async def record(
    session: AsyncSession, claim_: Claim, result: Result, *, now: datetime, tiers: Sequence[int],
    max_attempts: int,
) -> Recorded | None:
    """Store one attempt's outcome. None when the claim was lost meanwhile (another process took
    over a claim it believed abandoned); that process reconciles, so this result is dropped."""
    values: dict[str, Any] = {"updated_at": now}
    next_at = None
    outcome = result.outcome
    if outcome == Outcome.DELIVERED:
        state = DeliveryState.DELIVERED
        values.update(delivered_at=now, last_error=None)
    elif outcome == Outcome.FAILED:
        state = DeliveryState.FAILED
        values.update(claimed_at=None, last_error=_error(result.detail or "Failed."))
    elif outcome == Outcome.UNKNOWN:
        # Keep the claim time: the next attempt looks this one up instead of sending again. It comes
        # by itself on the retry tiers; past the last attempt the row rests until an owner retries.
        state = DeliveryState.UNKNOWN
        if claim_.attempt < max_attempts:
            next_at = now + timedelta(seconds=retry_delay(claim_.attempt, tiers, result.retry_after))
        values.update(last_error=_error(result.detail or "The outcome of the call is not known; it will be "
                                        "looked up before anything is sent again."))
    elif claim_.attempt >= max_attempts:
        state = DeliveryState.DEAD
        values.update(claimed_at=None, last_error=_error(
            f"Gave up after {claim_.attempt} attempts: {result.detail or 'temporary error'}"))
    else:
        state = DeliveryState.PENDING
        next_at = now + timedelta(seconds=retry_delay(claim_.attempt, tiers, result.retry_after))
        values.update(claimed_at=None, last_error=_error(result.detail or "Temporary error; will retry."))
    if result.external_ref is not None:
        values["external_ref"] = result.external_ref[:500]
    values.update(state=state, next_attempt_at=next_at)
    updated = await session.execute(
        update(Delivery).where(Delivery.id == claim_.delivery_id, Delivery.state == DeliveryState.IN_FLIGHT,
                               Delivery.claimed_at == claim_.claimed_at)
        .values(**values).execution_options(synchronize_session=False))
    if updated.rowcount != 1:
        return None
    return Recorded(claim_.delivery_id, state, next_at, values.get("last_error") or "")


async def mark_dead(session: AsyncSession, delivery_id: UUID, reason: str, *, now: datetime) -> bool:
    """A message about this delivery cannot be processed at all (poison): make that visible."""
    updated = await session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.state.not_in(
            [DeliveryState.DELIVERED, DeliveryState.IN_FLIGHT]))
        .values(state=DeliveryState.DEAD, last_error=_error(reason), next_attempt_at=None, claimed_at=None,
                updated_at=now).execution_options(synchronize_session=False))
    return updated.rowcount == 1


async def due(
    session: AsyncSession, kinds: Collection[str], *, now: datetime, stale_after: float, limit: int
) -> list[tuple[UUID, str]]:
    """(delivery id, kind) of rows the embedded dispatcher should run now, oldest first: pending or
    unknown rows whose time has come, and in-flight rows whose claim was abandoned."""
    stale_before = now - timedelta(seconds=stale_after)
    rows = await session.execute(
        select(Delivery.id, FormIntegration.kind)
        .join(FormIntegration, FormIntegration.id == Delivery.integration_id)
        .where(FormIntegration.kind.in_(list(kinds)), or_(
            and_(Delivery.state.in_([DeliveryState.PENDING, DeliveryState.UNKNOWN]),
                 Delivery.next_attempt_at <= now),
            and_(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at.is_(None)),
            and_(Delivery.state == DeliveryState.IN_FLIGHT, Delivery.claimed_at < stale_before),
        ))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def overdue(
    session: AsyncSession, kinds: Collection[str], *, now: datetime, grace: float, limit: int
) -> list[tuple[Delivery, str]]:
    """Rows whose message should have come back long ago (broker path): due for more than `grace`
    seconds, or in flight for more than twice that. Their message was lost (purged, or dead-lettered
    by the broker after crashing its consumer too often), so the relay announces them again."""
    due_before = now - timedelta(seconds=grace)
    rows = await session.execute(
        select(Delivery, FormIntegration.kind)
        .join(FormIntegration, FormIntegration.id == Delivery.integration_id)
        .where(FormIntegration.kind.in_(list(kinds)), FormIntegration.enabled.is_(True), or_(
            and_(Delivery.state.in_([DeliveryState.PENDING, DeliveryState.UNKNOWN]),
                 Delivery.next_attempt_at < due_before),
            and_(Delivery.state == DeliveryState.IN_FLIGHT,
                 Delivery.claimed_at < due_before - timedelta(seconds=grace)),
        ))
        .order_by(Delivery.id).limit(limit)
    )
    return [(r[0], r[1]) for r in rows]
