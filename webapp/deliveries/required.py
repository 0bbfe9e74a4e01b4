"""Questions an active integration needs answered (e.g. the SMS recipient's phone number).

Looked up on every submission, so the answer is cached per (form id, form version). Every change
to a form's integrations that changes this set bumps the form's version (see
webapp/deliveries/service.py), so a cached set is never stale: a new version is simply a new key,
across worker processes, with no invalidation. Submitting costs no extra query once a version is
cached.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.deliveries.models import FormIntegration
from webapp.plugins import decode_config, load_integrations

log = structlog.get_logger("webapp.deliveries")

_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[UUID, int], frozenset[UUID]] = OrderedDict()


async def compute_required(session: AsyncSession, form_id: UUID) -> frozenset[UUID]:
    """The current set, read from the database in the caller's transaction (never cached)."""
    registry = load_integrations()
    rows = await session.execute(
        select(FormIntegration.kind, FormIntegration.config)
        .where(FormIntegration.form_id == form_id, FormIntegration.enabled.is_(True))
    )
    required: set[UUID] = set()
    for kind, raw in rows:
        integration = registry.get(kind)
        if integration is None:
            continue
        config, errors = decode_config(integration, raw)
        if errors:  # a config that no longer decodes cannot be delivered either; say so, do not fail
            log.warning("integration_config_invalid", form_id=str(form_id), kind=kind)
            continue
        required.update(integration.required_questions(config))
    return frozenset(required)


async def extra_required(session: AsyncSession, form_id: UUID, version: int) -> frozenset[UUID]:
    """The set for this form version; only the first submission of a version per process queries."""
    key = (form_id, version)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    required = await compute_required(session, form_id)
    _cache[key] = required
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return required
