"""JSON API for submissions (public) and responses (owner)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, MediaType, Request, Response, delete, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.deps import provide_user
from webapp.accounts.models import User
from webapp.forms.service import owned_form_version
from webapp.responses import service
from webapp.responses.convert import response_out
from webapp.responses.pagejson import responses_page
from webapp.responses.schemas import ResponseOut, ResponsePage, SubmissionIn
from webapp.settings import Settings


class SubmissionController(Controller):
    path = "/api/v1/forms/{form_id:str}/responses"
    tags = ["responses"]

    @post("/", status_code=HTTP_201_CREATED, summary="Submit a response to an open form (public)")
    async def submit(
        self, request: Request, db_session: AsyncSession, form_id: UUID, data: SubmissionIn
    ) -> ResponseOut:
        settings: Settings = request.app.state.settings
        view = await service.submit(db_session, form_id, data.items(), region=settings.default_phone_region)
        return response_out(view)


class ResponseController(Controller):
    path = "/api/v1/forms/{form_id:str}/responses"
    tags = ["responses"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List a form's responses, newest first (keyset pagination)")
    async def list_responses(
        self,
        db_session: AsyncSession,
        user: User,
        form_id: UUID,
        limit: Annotated[int, Parameter(ge=1, le=service.MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Response[ResponsePage]:
        version = await owned_form_version(db_session, user.id, form_id)
        body = await responses_page(db_session, form_id, version, limit=limit, cursor=cursor)
        return Response(body, media_type=MediaType.JSON)  # already encoded: a ResponsePage

    @get("/{response_id:str}", summary="Get a response with its answers")
    async def get_response(
        self, db_session: AsyncSession, user: User, form_id: UUID, response_id: UUID
    ) -> ResponseOut:
        response, form = await service.get_owned_response(db_session, user.id, response_id, form_id)
        return response_out(await service.response_view(db_session, response, form))

    @patch("/{response_id:str}", summary="Change answers; the whole response is validated again")
    async def update_response(
        self, request: Request, db_session: AsyncSession, user: User, form_id: UUID, response_id: UUID,
        data: SubmissionIn,
    ) -> ResponseOut:
        response, form = await service.get_owned_response(db_session, user.id, response_id, form_id)
        settings: Settings = request.app.state.settings
        view = await service.update_response(db_session, response, form, data.items(),
                                             region=settings.default_phone_region)
        return response_out(view)

    @delete("/{response_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Delete a response")
    async def delete_response(
        self, db_session: AsyncSession, user: User, form_id: UUID, response_id: UUID
    ) -> None:
        response, form = await service.get_owned_response(db_session, user.id, response_id, form_id)
        await service.delete_response(db_session, response, form)
