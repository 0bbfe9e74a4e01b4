"""API shapes for form integrations and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import UNSET, Meta, Struct, UnsetType

from webapp.deliveries.models import DeliveryState

Kind = Annotated[str, Meta(min_length=1, max_length=64)]
# Length is checked again after stripping, so "   " is refused with a precise message.
Name = Annotated[str, Meta(max_length=200)]
Config = Annotated[dict[str, Any], Meta(max_length=100)]


class IntegrationKindOut(Struct):
    """An installed integration: what the UI needs to render its settings form."""

    kind: str
    title: str
    batch_size: int
    config_schema: dict[str, Any]


class IntegrationCreate(Struct, forbid_unknown_fields=True):
    kind: Kind
    name: Name | None = None  # defaults to the integration's title
    config: Config = {}
    enabled: bool = True


class IntegrationUpdate(Struct, forbid_unknown_fields=True):
    """`config` is merged into the stored one key by key, so a masked secret can be left out."""

    name: Name | UnsetType = UNSET
    config: Config | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class IntegrationOut(Struct):
    id: UUID
    form_id: UUID
    kind: str
    title: str | None  # None when the kind is no longer installed
    installed: bool
    name: str
    enabled: bool
    config: dict[str, Any]  # secrets masked, except in the answer to the create call
    created_at: datetime
    updated_at: datetime
    delivery_counts: dict[str, int] = {}


class TestResultOut(Struct):
    """The outcome of a test message. The call itself succeeded: the outcome says how the test went."""

    outcome: str  # delivered | failed | retry | unknown
    detail: str
    external_ref: str | None = None


class DeliveryOut(Struct):
    id: UUID
    integration_id: UUID
    integration_name: str
    kind: str
    response_id: UUID | None
    event_id: UUID
    event_type: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    external_ref: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    retryable: bool


class DeliveryPage(Struct):
    items: list[DeliveryOut]
    next_cursor: str | None
    limit: int


class IntegrationDeliveriesOut(Struct):
    """One integration of the form and its deliveries for one response, newest first."""

    integration_id: UUID
    integration_name: str
    kind: str
    enabled: bool
    state: DeliveryState | None  # of the newest delivery; None when nothing was delivered yet
    deliveries: list[DeliveryOut]


class ResponseDeliveriesOut(Struct):
    response_id: UUID
    items: list[IntegrationDeliveriesOut]


class RetryOut(Struct):
    delivery: DeliveryOut
    event_id: UUID  # the delivery.retry event written to the outbox
