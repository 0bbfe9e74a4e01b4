"""Login throttling per account and per IP, in `rate_limit_buckets` so every worker shares it.

Fixed 15-minute windows counting failed attempts. One address may legitimately serve a whole
office, so its allowance is a multiple of the per-account one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import RateLimitBucket
from webapp.timeutil import utcnow

WINDOW = timedelta(minutes=15)
IP_FACTOR = 5


class Throttled(Exception):
    """Too many failed attempts; `minutes` says how long until the window ends."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(f"Too many attempts; try again in {minutes} {unit}.")


def _keys(email: str, ip: str | None) -> list[tuple[str, int]]:
    # Keys are bounded so a huge email cannot overflow the column.
    return [(f"login:acct:{email.strip().lower()[:200]}", 1), (f"login:ip:{(ip or 'unknown')[:64]}", IP_FACTOR)]


def _minutes_left(window_start: datetime, now: datetime) -> int:
    return max(1, math.ceil((window_start + WINDOW - now).total_seconds() / 60))


async def check_login(db: AsyncSession, email: str, ip: str | None, limit: int) -> None:
    """Raise Throttled when this account or this address used up its failed attempts."""
    now = utcnow()
    keys = dict(_keys(email, ip))
    rows = await db.execute(select(RateLimitBucket.key, RateLimitBucket.window_start, RateLimitBucket.hits)
                            .where(RateLimitBucket.key.in_(list(keys))))
    waits = [_minutes_left(start, now) for key, start, hits in rows
             if start > now - WINDOW and hits >= limit * keys[key]]
    if waits:
        raise Throttled(max(waits))


async def record_failure(db: AsyncSession, email: str, ip: str | None) -> None:
    """Count one failed attempt against the account and the address (atomic per bucket)."""
    now = utcnow()
    for key, _factor in _keys(email, ip):
        await _hit(db, key, now)


async def _hit(db: AsyncSession, key: str, now: datetime) -> None:
    expired = RateLimitBucket.window_start <= now - WINDOW
    stmt = (update(RateLimitBucket).where(RateLimitBucket.key == key).values(
        hits=case((expired, 1), else_=RateLimitBucket.hits + 1),
        window_start=case((expired, now), else_=RateLimitBucket.window_start),
    ).execution_options(synchronize_session=False))
    if (await db.execute(stmt)).rowcount:
        return
    try:
        async with db.begin_nested():
            await db.execute(insert(RateLimitBucket).values(key=key, window_start=now, hits=1))
    except IntegrityError:  # another worker created it first: count on theirs
        await db.execute(stmt)


async def clear_account(db: AsyncSession, email: str) -> None:
    """A successful login forgives the account's earlier typos (the address keeps its count)."""
    key = _keys(email, None)[0][0]
    await db.execute(delete(RateLimitBucket).where(RateLimitBucket.key == key))
