"""JSON API for forms and questions (/api/v1)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, MediaType, Response, delete, get, patch, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.deps import provide_optional_user, provide_user
from webapp.accounts.models import User
from webapp.errors import not_found
from webapp.forms import service
from webapp.forms.convert import form_out, question_out
from webapp.forms.public import public_definition
from webapp.forms.schemas import (
    FormCreate,
    FormOut,
    FormPage,
    FormUpdate,
    PublicFormOut,
    QuestionCreate,
    QuestionOut,
    QuestionReorder,
    QuestionUpdate,
)
from webapp.responses.service import count_responses


class FormController(Controller):
    path = "/api/v1/forms"
    tags = ["forms"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List my forms")
    async def list_forms(
        self,
        db_session: AsyncSession,
        user: User,
        q: Annotated[str | None, Parameter(description="Search in title and description", max_length=200)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> FormPage:
        rows, total = await service.list_forms(db_session, user.id, search=q, limit=limit, offset=offset)
        return FormPage(items=[form_out(f, response_count=n) for f, n in rows], total=total, limit=limit,
                        offset=offset)

    @post("/", summary="Create a form (a draft unless a status is given)")
    async def create_form(self, db_session: AsyncSession, user: User, data: FormCreate) -> FormOut:
        form = await service.create_form(db_session, user.id, data)
        return form_out(form, form.questions, 0)

    @get("/{form_id:str}", summary="Get a form with its questions",
         dependencies={"user": Provide(provide_optional_user)},
         responses={200: ResponseSpec(FormOut | PublicFormOut, description="The owner sees the whole form; "
                                      "anyone else an open form's public definition")})
    async def get_form(
        self, db_session: AsyncSession, user: User | None, form_id: UUID,
        include_archived: bool = False,
    ) -> Response[bytes] | FormOut:
        """Owners see everything; anyone else sees an open form's public definition."""
        if user is not None:
            form = await service.get_public_form(db_session, form_id)
            if form is not None and form.owner_id == user.id:
                questions = await service.load_questions(db_session, form.id, include_archived=include_archived)
                return form_out(form, questions, await count_responses(db_session, form.id))
        body = await public_definition(db_session, form_id)
        if body is None:
            raise not_found("Form")
        return Response(body, media_type=MediaType.JSON)

    @patch("/{form_id:str}", summary="Update a form's settings")
    async def update_form(self, db_session: AsyncSession, user: User, form_id: UUID, data: FormUpdate) -> FormOut:
        form = await service.get_owned_form(db_session, user.id, form_id)
        await service.update_form(db_session, form, data)
        return form_out(form, await service.load_questions(db_session, form.id, include_archived=False))

    @delete("/{form_id:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Delete a form with its questions, responses and answers")
    async def delete_form(self, db_session: AsyncSession, user: User, form_id: UUID) -> None:
        form = await service.get_owned_form(db_session, user.id, form_id)
        await service.delete_form(db_session, form)

    # ---- questions ----

    @get("/{form_id:str}/questions", summary="List a form's questions")
    async def list_questions(
        self, db_session: AsyncSession, user: User, form_id: UUID, include_archived: bool = False
    ) -> list[QuestionOut]:
        form = await service.get_owned_form(db_session, user.id, form_id)
        questions = await service.load_questions(db_session, form.id, include_archived=include_archived)
        return [question_out(q) for q in questions]

    @post("/{form_id:str}/questions", summary="Add a question")
    async def create_question(
        self, db_session: AsyncSession, user: User, form_id: UUID, data: QuestionCreate
    ) -> QuestionOut:
        form = await service.get_owned_form(db_session, user.id, form_id, lock=True)
        return question_out(await service.add_question(db_session, form, data))

    @post("/{form_id:str}/questions/reorder", status_code=HTTP_200_OK, summary="Reorder the active questions")
    async def reorder_questions(
        self, db_session: AsyncSession, user: User, form_id: UUID, data: QuestionReorder
    ) -> list[QuestionOut]:
        form = await service.get_owned_form(db_session, user.id, form_id, lock=True)
        return [question_out(q) for q in await service.reorder_questions(db_session, form, data.question_ids)]

    @get("/{form_id:str}/questions/{question_id:str}", summary="Get a question")
    async def get_question(
        self, db_session: AsyncSession, user: User, form_id: UUID, question_id: UUID
    ) -> QuestionOut:
        form = await service.get_owned_form(db_session, user.id, form_id)
        return question_out(await service.get_question(db_session, form, question_id))

    @patch("/{form_id:str}/questions/{question_id:str}", summary="Update a question")
    async def update_question(
        self, db_session: AsyncSession, user: User, form_id: UUID, question_id: UUID, data: QuestionUpdate
    ) -> QuestionOut:
        form = await service.get_owned_form(db_session, user.id, form_id, lock=True)
        question = await service.get_question(db_session, form, question_id)
        return question_out(await service.update_question(db_session, form, question, data))

    @delete("/{form_id:str}/questions/{question_id:str}", status_code=HTTP_200_OK,
            summary="Remove a question: archived if it has answers, deleted otherwise or with ?purge=true")
    async def delete_question(
        self, db_session: AsyncSession, user: User, form_id: UUID, question_id: UUID, purge: bool = False
    ) -> dict[str, str]:
        form = await service.get_owned_form(db_session, user.id, form_id, lock=True)
        question = await service.get_question(db_session, form, question_id)
        outcome = await service.remove_question(db_session, form, question, purge=purge)
        return {"id": str(question_id), "result": outcome}
