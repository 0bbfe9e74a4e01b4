"""A response as the services hand it to controllers and pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from webapp.responses.models import ResponseStatus


@dataclass(slots=True)
class ResponseView:
    id: UUID
    form_id: UUID
    form_version: int
    status: ResponseStatus
    submitted_at: datetime
    updated_at: datetime
    answers: list[dict[str, Any]]
