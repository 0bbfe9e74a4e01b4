"""JSON API for form integrations and deliveries (/api/v1)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import UNSET
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.deps import provide_user
from webapp.accounts.models import User
from webapp.deliveries import service
from webapp.deliveries.models import DeliveryState, FormIntegration
from webapp.deliveries.schemas import (
    DeliveryOut,
    DeliveryPage,
    IntegrationCreate,
    IntegrationDeliveriesOut,
    IntegrationKindOut,
    IntegrationOut,
    IntegrationUpdate,
    ResponseDeliveriesOut,
    RetryOut,
    TestResultOut,
)
from webapp.plugins import Integration


def kind_out(integration: Integration) -> IntegrationKindOut:
    return IntegrationKindOut(kind=integration.kind, title=integration.title, batch_size=integration.batch_size,
                              config_schema=service.config_json_schema(integration))


def integration_out(row: FormIntegration, counts: dict[str, int] | None = None, *, reveal: bool = False,
                    ) -> IntegrationOut:
    integration = service.installed().get(row.kind)
    return IntegrationOut(
        id=row.id, form_id=row.form_id, kind=row.kind, title=integration.title if integration else None,
        installed=integration is not None, name=row.name, enabled=row.enabled,
        config=dict(row.config or {}) if reveal else service.masked_config(row),
        created_at=row.created_at, updated_at=row.updated_at, delivery_counts=counts or {},
    )


def delivery_out(view: service.DeliveryView) -> DeliveryOut:
    d = view.delivery
    return DeliveryOut(
        id=d.id, integration_id=d.integration_id, integration_name=view.integration_name, kind=view.kind,
        response_id=d.response_id, event_id=d.event_id, event_type=d.event_type, state=DeliveryState(d.state),
        attempts=d.attempts, last_error=d.last_error, external_ref=d.external_ref,
        next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at, created_at=d.created_at,
        updated_at=d.updated_at, retryable=view.retryable,
    )


class IntegrationKindController(Controller):
    path = "/api/v1/integrations"
    tags = ["integrations"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="Installed integration kinds with their config JSON schema")
    async def list_kinds(self, user: User) -> list[IntegrationKindOut]:
        return [kind_out(i) for _, i in sorted(service.installed().items())]


class FormIntegrationController(Controller):
    path = "/api/v1/forms/{form_id:str}/integrations"
    tags = ["integrations"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List the form's integrations (secrets masked)")
    async def list_integrations(self, db_session: AsyncSession, user: User, form_id: UUID) -> list[IntegrationOut]:
        _, rows = await service.list_integrations(db_session, user.id, form_id)
        counts = await service.delivery_counts(db_session, [r.id for r in rows])
        return [integration_out(r, counts[r.id]) for r in rows]

    @post("/", status_code=HTTP_201_CREATED,
          summary="Connect an integration; config errors come back field by field (secrets shown this once)")
    async def create_integration(
        self, db_session: AsyncSession, user: User, form_id: UUID, data: IntegrationCreate
    ) -> IntegrationOut:
        row = await service.create_integration(db_session, user.id, form_id, kind=data.kind, name=data.name,
                                               config=data.config, enabled=data.enabled)
        return integration_out(row, reveal=True)

    @get("/{integration_id:str}", summary="Get one integration (secrets masked)")
    async def get_integration(
        self, db_session: AsyncSession, user: User, form_id: UUID, integration_id: UUID
    ) -> IntegrationOut:
        row, _ = await service.get_owned_integration(db_session, user.id, form_id, integration_id)
        counts = await service.delivery_counts(db_session, [row.id])
        return integration_out(row, counts[row.id])

    @patch("/{integration_id:str}",
           summary="Rename, enable/disable or change the config (merged key by key; masked secrets are kept)")
    async def update_integration(
        self, db_session: AsyncSession, user: User, form_id: UUID, integration_id: UUID, data: IntegrationUpdate
    ) -> IntegrationOut:
        row = await service.update_integration(
            db_session, user.id, form_id, integration_id,
            name=None if data.name is UNSET else data.name,
            config=None if data.config is UNSET else data.config,
            enabled=None if data.enabled is UNSET else data.enabled,
        )
        counts = await service.delivery_counts(db_session, [row.id])
        return integration_out(row, counts[row.id])

    @delete("/{integration_id:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Disconnect an integration; its delivery records go with it")
    async def delete_integration(self, db_session: AsyncSession, user: User, form_id: UUID, integration_id: UUID,
                                 ) -> None:
        await service.delete_integration(db_session, user.id, form_id, integration_id)

    @post("/{integration_id:str}/test", status_code=HTTP_200_OK,
          summary="Send a test message. 200 whenever the test ran: the outcome (delivered/failed/…) is in the body")
    async def send_test(self, db_session: AsyncSession, user: User, form_id: UUID, integration_id: UUID,
                        ) -> TestResultOut:
        result = await service.send_test(db_session, user.id, form_id, integration_id)
        return TestResultOut(outcome=str(result.outcome), detail=result.detail, external_ref=result.external_ref)


class DeliveryController(Controller):
    path = "/api/v1"
    tags = ["deliveries"]
    dependencies = {"user": Provide(provide_user)}

    @get("/forms/{form_id:str}/deliveries", summary="List the form's deliveries, newest first (keyset pagination)")
    async def list_deliveries(
        self,
        db_session: AsyncSession,
        user: User,
        form_id: UUID,
        state_filter: Annotated[DeliveryState | None, QueryParameter(name="state")] = None,  # `state` is reserved
        integration_id: UUID | None = None,
        response_id: UUID | None = None,
        limit: Annotated[int, Parameter(ge=1, le=service.MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> DeliveryPage:
        views, next_cursor = await service.list_deliveries(
            db_session, user.id, form_id, state=state_filter, integration_id=integration_id, response_id=response_id,
            limit=limit, cursor=cursor)
        return DeliveryPage(items=[delivery_out(v) for v in views], next_cursor=next_cursor, limit=limit)

    @get("/forms/{form_id:str}/responses/{response_id:str}/deliveries",
         summary="Each integration of the form with its deliveries of this response")
    async def response_deliveries(
        self, db_session: AsyncSession, user: User, form_id: UUID, response_id: UUID
    ) -> ResponseDeliveriesOut:
        _, integrations, by_integration = await service.response_deliveries(db_session, user.id, form_id, response_id)
        items = []
        for row in integrations:
            views = by_integration.get(row.id, [])
            items.append(IntegrationDeliveriesOut(
                integration_id=row.id, integration_name=row.name, kind=row.kind, enabled=row.enabled,
                state=DeliveryState(views[0].delivery.state) if views else None,
                deliveries=[delivery_out(v) for v in views]))
        return ResponseDeliveriesOut(response_id=response_id, items=items)

    @post("/deliveries/{delivery_id:str}/retry", status_code=HTTP_200_OK,
          summary="Retry a failed, dead or unknown delivery (409 otherwise)")
    async def retry_delivery(self, db_session: AsyncSession, user: User, delivery_id: UUID) -> RetryOut:
        view, event_id = await service.retry_delivery(db_session, user.id, delivery_id)
        return RetryOut(delivery=delivery_out(view), event_id=event_id)
