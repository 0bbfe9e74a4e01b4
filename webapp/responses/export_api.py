"""JSON-API twin of the results page's download: the CSV export for API-token holders."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import get
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webapp.accounts.deps import provide_user
from webapp.accounts.models import User
from webapp.forms.service import get_owned_form
from webapp.responses.export import csv_response


@get("/api/v1/forms/{form_id:str}/responses.csv", tags=["responses"], dependencies={"user": Provide(provide_user)},
     summary="Download every response as CSV (UTF-8 with BOM, one column per question, streamed)",
     media_type="text/csv")
async def export_responses_csv(
    db_session: AsyncSession, db_engine: AsyncEngine, user: User, form_id: UUID,
    limit: Annotated[int | None, Parameter(ge=1, description="Only the oldest N responses")] = None,
) -> Stream:
    form = await get_owned_form(db_session, user.id, form_id)
    return await csv_response(db_session, db_engine, form, limit)
