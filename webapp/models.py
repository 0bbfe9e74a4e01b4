"""Import every model so the metadata (and Alembic autogenerate) sees all tables."""

from webapp.accounts.models import ApiToken, RateLimitBucket, User, UserSession
from webapp.deliveries.models import Delivery, DeliveryState, FormIntegration
from webapp.forms.models import CHOICE_KINDS, Form, FormStatus, Question, QuestionKind
from webapp.outbox.models import OutboxEvent
from webapp.responses.models import Answer, Response, ResponseStatus

__all__ = (
    "CHOICE_KINDS",
    "Answer",
    "ApiToken",
    "Delivery",
    "DeliveryState",
    "Form",
    "FormIntegration",
    "FormStatus",
    "OutboxEvent",
    "Question",
    "QuestionKind",
    "RateLimitBucket",
    "Response",
    "ResponseStatus",
    "User",
    "UserSession",
)
