"""What anyone may read of an open form, cached per (form, version, last change).

Every read still asks the database for the form's status, version and updated_at (one small
indexed read), so a change made by any worker process is seen by the very next request; only the
questions query and the JSON encoding are saved.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.forms import stamps
from webapp.forms.convert import public_form_out
from webapp.forms.models import FormStatus
from webapp.forms.service import get_public_form, load_questions

_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[UUID, int, object], bytes] = OrderedDict()
_encode = msgspec.json.Encoder().encode


async def public_definition(session: AsyncSession, form_id: UUID) -> bytes | None:
    """The JSON body of an open form's public definition, or None when it is not open or unknown."""
    stamp = await stamps.read(session, "SELECT status, version, updated_at FROM forms WHERE id = $1", form_id)
    if stamp is None or stamp[0] != FormStatus.OPEN.value:
        return None
    key = (form_id, stamp[1], stamp[2])
    body = _cache.get(key)
    if body is not None:
        _cache.move_to_end(key)
        return body
    form = await get_public_form(session, form_id)
    if form is None or form.status != FormStatus.OPEN:
        return None
    body = _encode(public_form_out(form, await load_questions(session, form.id, include_archived=False)))
    # Key by what this read saw, so a concurrent change can only make the entry unused, never wrong.
    _cache[(form_id, form.version, form.updated_at if stamp[2] is None else stamp[2])] = body
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return body
