"""The reference ("seed") API at its own paths and shapes, over the same services.

Thin by design: parse the reference shape (webapp.compat.schemas), call the forms and responses
services, render the reference field names. Auth, validation and transactions are the same as for
/api/v1; ids travel as `{x_id:str}` and are parsed as UUIDs so a malformed id is a 400 problem.
"""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.deps import provide_optional_user, provide_user
from webapp.accounts.models import User
from webapp.compat.schemas import (
    CompatAnswersIn,
    CompatFormCreate,
    CompatFormOut,
    CompatFormUpdate,
    CompatMessage,
    CompatQuestionCreate,
    CompatQuestionOut,
    CompatQuestionUpdate,
    CompatResponseOut,
    form_out,
    question_out,
    response_out,
)
from webapp.errors import not_found
from webapp.forms import service as forms
from webapp.forms.models import FormStatus, Question
from webapp.responses import service as responses
from webapp.settings import Settings

# The reference lists were unpaginated JSON arrays; cap them so one call stays cheap.
LIST_LIMIT = 1000


def _region(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.default_phone_region


class CompatFormController(Controller):
    path = "/form"
    tags = ["compat"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List my forms with their questions (newest first)")
    async def list_forms(self, db_session: AsyncSession, user: User) -> list[CompatFormOut]:
        rows, _ = await forms.list_forms(db_session, user.id, search=None, limit=LIST_LIMIT, offset=0)
        form_list = [f for f, _ in rows]
        by_form: dict[UUID, list[Question]] = {f.id: [] for f in form_list}
        for q in await forms.list_owned_questions(db_session, user.id, form_ids=list(by_form)):
            by_form[q.form_id].append(q)
        return [form_out(f, by_form[f.id]) for f in form_list]

    @post("/create", status_code=HTTP_201_CREATED, summary="Create a form (open at once)")
    async def create_form(
        self, db_session: AsyncSession, user: User, data: CompatFormCreate
    ) -> CompatFormOut:
        form = await forms.create_form(db_session, user.id, data.to_create())
        return form_out(form, [])

    @get("/{form_id:str}", summary="Get a form with its questions",
         dependencies={"user": Provide(provide_optional_user)})
    async def get_form(self, db_session: AsyncSession, user: User | None, form_id: UUID) -> CompatFormOut:
        """The owner sees the form whatever its status; anyone else only while it is open."""
        form = await forms.get_public_form(db_session, form_id)
        if form is None:
            raise not_found("Form")
        owner = user is not None and form.owner_id == user.id
        if not owner and form.status != FormStatus.OPEN:
            raise not_found("Form")
        questions = await forms.load_questions(db_session, form.id, include_archived=False)
        return form_out(form, questions, owner=owner)

    @patch("/{form_id:str}", summary="Update a form's title, contact details or status")
    async def update_form(
        self, db_session: AsyncSession, user: User, form_id: UUID, data: CompatFormUpdate
    ) -> CompatFormOut:
        form = await forms.get_owned_form(db_session, user.id, form_id)
        await forms.update_form(db_session, form, data.to_update())
        return form_out(form, await forms.load_questions(db_session, form.id, include_archived=False))

    @delete("/{form_id:str}", status_code=HTTP_200_OK,
            summary="Delete a form with its questions, responses and answers")
    async def delete_form(self, db_session: AsyncSession, user: User, form_id: UUID) -> CompatMessage:
        form = await forms.get_owned_form(db_session, user.id, form_id)
        await forms.delete_form(db_session, form)
        return CompatMessage(message="Form deleted.", id=form_id)

    @post("/{form_id:str}/create", status_code=HTTP_201_CREATED, summary="Add a question to a form")
    async def create_question(
        self, db_session: AsyncSession, user: User, form_id: UUID, data: CompatQuestionCreate
    ) -> CompatQuestionOut:
        form = await forms.get_owned_form(db_session, user.id, form_id, lock=True)
        return question_out(await forms.add_question(db_session, form, data.to_create()))

    @post("/{form_id:str}", status_code=HTTP_201_CREATED,
          summary="Submit a response to an open form (public)")
    async def submit(
        self, request: Request, db_session: AsyncSession, form_id: UUID, data: CompatAnswersIn
    ) -> CompatResponseOut:
        view = await responses.submit(db_session, form_id, data.items(), region=_region(request))
        return response_out(view)


class CompatQuestionController(Controller):
    path = "/question"
    tags = ["compat"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List the active questions of my forms")
    async def list_questions(self, db_session: AsyncSession, user: User) -> list[CompatQuestionOut]:
        return [question_out(q) for q in await forms.list_owned_questions(db_session, user.id)]

    @patch("/{question_id:str}", summary="Update a question")
    async def update_question(
        self, db_session: AsyncSession, user: User, question_id: UUID, data: CompatQuestionUpdate
    ) -> CompatQuestionOut:
        question, form = await forms.get_owned_question(db_session, user.id, question_id, lock=True)
        return question_out(await forms.update_question(db_session, form, question, data.to_update()))

    @delete("/{question_id:str}", status_code=HTTP_200_OK,
            summary="Remove a question: archived if it has answers, deleted otherwise or with ?purge=true")
    async def delete_question(
        self, db_session: AsyncSession, user: User, question_id: UUID, purge: bool = False
    ) -> CompatMessage:
        question, form = await forms.get_owned_question(db_session, user.id, question_id, lock=True)
        outcome = await forms.remove_question(db_session, form, question, purge=purge)
        return CompatMessage(message=f"Question {outcome}.", id=question_id, result=outcome)


class CompatResponseController(Controller):
    path = "/response"
    tags = ["compat"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List the responses to my forms (newest first)")
    async def list_responses(self, db_session: AsyncSession, user: User) -> list[CompatResponseOut]:
        return [response_out(v) for v in await responses.list_all_responses(db_session, user.id, LIST_LIMIT)]

    @get("/{response_id:str}", summary="Get a response with its answers")
    async def get_response(
        self, db_session: AsyncSession, user: User, response_id: UUID
    ) -> CompatResponseOut:
        response, form = await responses.get_owned_response(db_session, user.id, response_id)
        return response_out(await responses.response_view(db_session, response, form))

    @patch("/{response_id:str}", summary="Replace some answers; the whole response is validated again")
    async def update_response(
        self, request: Request, db_session: AsyncSession, user: User, response_id: UUID, data: CompatAnswersIn
    ) -> CompatResponseOut:
        response, form = await responses.get_owned_response(db_session, user.id, response_id)
        view = await responses.update_response(db_session, response, form, data.items(),
                                               region=_region(request))
        return response_out(view)

    @delete("/{response_id:str}", status_code=HTTP_200_OK, summary="Delete a response")
    async def delete_response(self, db_session: AsyncSession, user: User, response_id: UUID) -> CompatMessage:
        response, form = await responses.get_owned_response(db_session, user.id, response_id)
        await responses.delete_response(db_session, response, form)
        return CompatMessage(message="Response deleted.", id=response_id)


# GET /health (the reference's liveness path) is served by webapp/health.py for every client.
compat_handlers = [CompatFormController, CompatQuestionController, CompatResponseController]
