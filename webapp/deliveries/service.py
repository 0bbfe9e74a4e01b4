"""Integrations connected to a form (create, change, test, remove) and the deliveries owners see.

Rules kept here:
- a config is checked in two steps: its shape by the integration's msgspec schema
  (`webapp.plugins.decode_config`), then against the form (`integration.validate_config`); every
  problem is reported as a field error with a path such as `config.phone_question_id`;
- the stored config is the decoded one (`msgspec.to_builtins`), so defaults an integration fills
  in (e.g. a generated webhook secret) are kept; secrets are masked in every answer except the
  one to the create call;
- when the questions active integrations require change, the form's version is bumped, which is
  what keeps the cached sets in webapp/deliveries/required.py right;
- an owner's retry of a failed, dead or unknown delivery re-queues the ledger row and writes a
  `delivery.retry` outbox event in the same transaction.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import msgspec.inspect as mi
import structlog
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from webapp.deliveries.models import RETRYABLE_BY_OWNER, Delivery, DeliveryState, FormIntegration
from webapp.deliveries.required import compute_required
from webapp.errors import ProblemError, not_found
from webapp.forms.definition import questions_for
from webapp.forms.models import Form
from webapp.forms.service import bump_version, get_owned_form
from webapp.outbox.events import SCHEMA_VERSION, write_event
from webapp.plugins import FieldError, FormContext, Integration, Outcome, Result, decode_config, load_integrations
from webapp.responses.models import Response
from webapp.responses.service import decode_cursor, encode_cursor
from webapp.timeutil import utcnow

log = structlog.get_logger("webapp.deliveries")

DELIVERY_RETRY = "delivery.retry"
MAX_PAGE = 200
MAX_CONFIG_BYTES = 64_000
MAX_INTEGRATIONS_PER_FORM = 50
SEND_TEST_TIMEOUT = 30.0  # seconds; integrations have their own, shorter, HTTP timeouts
MASK = "••••••"
_SECRET_WORDS = ("secret", "token", "password", "passphrase", "api_key", "apikey", "private_key", "credential")


# ---- installed kinds and their config schemas ------------------------------------------------------

def installed() -> dict[str, Integration]:
    return load_integrations().integrations


def config_json_schema(integration: Integration) -> dict[str, Any]:
    return msgspec.json.schema(integration.config_schema)


def _is_secret_type(t: mi.Type) -> bool:
    if isinstance(t, mi.UnionType):
        return any(_is_secret_type(inner) for inner in t.types)
    if isinstance(t, mi.Metadata):
        extra = t.extra_json_schema or {}
        return bool(extra.get("writeOnly")) or extra.get("format") == "password" or bool((t.extra or {}).get("secret"))
    return False


def secret_fields(integration: Integration) -> frozenset[str]:
    """Config keys whose values are secrets: marked writeOnly / format=password, or named like one."""
    info = mi.type_info(integration.config_schema)
    names = set()
    for f in getattr(info, "fields", ()):
        if _is_secret_type(f.type) or any(w in f.encode_name.lower() for w in _SECRET_WORDS):
            names.add(f.encode_name)
    return frozenset(names)


def mask(value: Any) -> Any:
    """Enough to recognise a secret (its last 4 characters when it is long), never enough to use it."""
    if value is None or value == "":
        return value
    if isinstance(value, str) and len(value) >= 16:
        return MASK + value[-4:]
    return MASK


def masked_config(row: FormIntegration) -> dict[str, Any]:
    integration = installed().get(row.kind)
    config = dict(row.config or {})
    secrets = secret_fields(integration) if integration else frozenset(
        k for k in config if any(w in k.lower() for w in _SECRET_WORDS))
    return {k: mask(v) if k in secrets else v for k, v in config.items()}


# ---- form context and config checks -----------------------------------------------------------------

async def form_context(session: AsyncSession, form: Form) -> FormContext:
    questions = await questions_for(session, form.id, form.version)
    return FormContext(form_id=form.id, title=form.title, version=form.version, questions=questions)


_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


def _field_errors(errors: Sequence[FieldError]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        field = e.field if e.field == "config" or e.field.startswith("config.") else f"config.{e.field}"
        message = e.message
        # msgspec reports these two at the object; the owner needs them at the field.
        if (m := _MISSING.match(message)) is not None:
            field, message = f"{field}.{m['name']}", "This field is required."
        elif (m := _UNKNOWN.match(message)) is not None:
            field, message = f"{field}.{m['name']}", "This integration has no such setting (unknown field)."
        out.append({"field": field, "message": message})
    return out


def _integration_for(kind: str) -> Integration:
    registry = load_integrations()
    integration = registry.get(kind)
    if integration is not None:
        return integration
    if kind in registry.errors:
        detail = f"The '{kind}' integration is installed but failed to load; ask the administrator to check it."
    elif registry.kinds():
        detail = f"Unknown integration kind '{kind}'. Installed kinds: {', '.join(registry.kinds())}."
    else:
        detail = f"Unknown integration kind '{kind}': no integrations are installed."
    raise ProblemError(422, detail, errors=[{"field": "kind", "message": detail}])


def _installed_or_conflict(row: FormIntegration) -> Integration:
    integration = installed().get(row.kind)
    if integration is None:
        raise ProblemError(409, f"The '{row.kind}' integration is not installed on this server, so this "
                                "connection cannot be used or changed (it can still be deleted or disabled).")
    return integration


def check_config(integration: Integration, raw: Mapping[str, Any], ctx: FormContext) -> tuple[Any, dict[str, Any]]:
    """(config struct, JSON-ready dict to store), or a 422 listing every field that is wrong."""
    if len(msgspec.json.encode(raw)) > MAX_CONFIG_BYTES:
        raise ProblemError(422, f"The configuration is too large (at most {MAX_CONFIG_BYTES // 1000} kB).",
                           errors=[{"field": "config", "message": "Too large."}])
    config, errors = decode_config(integration, dict(raw))
    if not errors:
        errors = list(integration.validate_config(config, ctx))
    if errors:
        fields = _field_errors(errors)
        raise ProblemError(422, "The configuration is invalid: " + "; ".join(
            f"{e['field']}: {e['message']}" for e in fields), errors=fields)
    return config, msgspec.to_builtins(config)


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ProblemError(422, "The name cannot be blank.", errors=[{"field": "name", "message": "Enter a name."}])
    if "\x00" in name:
        raise ProblemError(422, "The name contains a NUL character.",
                           errors=[{"field": "name", "message": "Contains a NUL character, which cannot be stored."}])
    return name


async def _bump_if_required_changed(session: AsyncSession, form: Form, before: frozenset[UUID]) -> None:
    await session.flush()
    if await compute_required(session, form.id) != before:
        await bump_version(session, form)


# ---- integrations -----------------------------------------------------------------------------------

async def list_integrations(session: AsyncSession, owner_id: UUID, form_id: UUID) -> tuple[Form, list[FormIntegration]]:
    form = await get_owned_form(session, owner_id, form_id)
    rows = await session.scalars(
        select(FormIntegration).where(FormIntegration.form_id == form.id)
        .order_by(FormIntegration.created_at, FormIntegration.id))
    return form, list(rows)


async def get_owned_integration(
    session: AsyncSession, owner_id: UUID, form_id: UUID, integration_id: UUID, *, lock: bool = False
) -> tuple[FormIntegration, Form]:
    form = await get_owned_form(session, owner_id, form_id, lock=lock)
    row = await session.scalar(
        select(FormIntegration).where(FormIntegration.id == integration_id, FormIntegration.form_id == form.id))
    if row is None:
        raise not_found("Integration")
    return row, form


async def delivery_counts(session: AsyncSession, integration_ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
    out: dict[UUID, dict[str, int]] = {i: {} for i in integration_ids}
    if not integration_ids:
        return out
    rows = await session.execute(
        select(Delivery.integration_id, Delivery.state, func.count())
        .where(Delivery.integration_id.in_(integration_ids))
        .group_by(Delivery.integration_id, Delivery.state))
    for iid, state, n in rows:
        out[iid][DeliveryState(state).value] = n
    return out


async def create_integration(
    session: AsyncSession, owner_id: UUID, form_id: UUID, *, kind: str, name: str | None,
    config: Mapping[str, Any], enabled: bool,
) -> FormIntegration:
    form = await get_owned_form(session, owner_id, form_id, lock=True)
    integration = _integration_for(kind.strip())
    name = _clean_name(name if name is not None else integration.title)
    count = await session.scalar(
        select(func.count()).select_from(FormIntegration).where(FormIntegration.form_id == form.id)) or 0
    if count >= MAX_INTEGRATIONS_PER_FORM:
        raise ProblemError(409, f"A form can have at most {MAX_INTEGRATIONS_PER_FORM} integrations.")
    _, stored = check_config(integration, config, await form_context(session, form))
    before = await compute_required(session, form.id)
    row = FormIntegration(form_id=form.id, kind=integration.kind, name=name, config=stored, enabled=enabled)
    session.add(row)
    await _bump_if_required_changed(session, form, before)
    log.info("integration_created", form_id=str(form.id), integration_id=str(row.id), kind=row.kind)
    return row


async def update_integration(
    session: AsyncSession, owner_id: UUID, form_id: UUID, integration_id: UUID, *,
    name: str | None = None, config: Mapping[str, Any] | None = None, enabled: bool | None = None,
) -> FormIntegration:
    """`config` is merged into the stored one key by key; a secret sent back masked keeps its value."""
    row, form = await get_owned_integration(session, owner_id, form_id, integration_id, lock=True)
    before = await compute_required(session, form.id)
    # Everything is checked before anything is assigned: a refused change leaves the row untouched.
    new_name = _clean_name(name) if name is not None else row.name
    new_config = row.config
    if config is not None or (enabled is True and not row.enabled):
        integration = _installed_or_conflict(row)
        merged = dict(row.config or {})
        secrets = secret_fields(integration)
        for key, value in (config or {}).items():
            if key in secrets and key in merged and value == mask(merged[key]):
                continue  # the masked value shown to the owner came back unchanged
            merged[key] = value
        _, new_config = check_config(integration, merged, await form_context(session, form))
    row.name, row.config = new_name, new_config
    if enabled is not None:
        row.enabled = enabled
    row.updated_at = utcnow()
    await _bump_if_required_changed(session, form, before)
    return row


async def delete_integration(session: AsyncSession, owner_id: UUID, form_id: UUID, integration_id: UUID) -> None:
    """Its deliveries go with it (the foreign key cascades)."""
    row, form = await get_owned_integration(session, owner_id, form_id, integration_id, lock=True)
    before = await compute_required(session, form.id)
    await session.execute(delete(FormIntegration).where(FormIntegration.id == row.id))
    await _bump_if_required_changed(session, form, before)
    log.info("integration_deleted", form_id=str(form.id), integration_id=str(row.id), kind=row.kind)


async def send_test(session: AsyncSession, owner_id: UUID, form_id: UUID, integration_id: UUID) -> Result:
    """Send the integration's test message with the stored config, checked against the form as it is now."""
    row, form = await get_owned_integration(session, owner_id, form_id, integration_id)
    integration = _installed_or_conflict(row)
    ctx = await form_context(session, form)
    config, _ = check_config(integration, row.config or {}, ctx)
    # Nothing to write: end the transaction so no connection is held during the external call.
    await session.commit()
    try:
        return await asyncio.wait_for(integration.send_test(config, ctx), SEND_TEST_TIMEOUT)
    except TimeoutError:
        return Result(Outcome.UNKNOWN, f"The test did not finish within {SEND_TEST_TIMEOUT:.0f} seconds.")
    except Exception as exc:  # a plugin may fail in any way; the owner gets the reason, not a 500
        log.warning("integration_test_raised", integration_id=str(row.id), kind=row.kind, error=type(exc).__name__)
        return Result(Outcome.FAILED, f"The test raised {type(exc).__name__}: {str(exc)[:300]}")


# ---- deliveries ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class DeliveryView:
    delivery: Delivery
    integration_name: str
    kind: str
    enabled: bool

    @property
    def retryable(self) -> bool:
        return DeliveryState(self.delivery.state) in RETRYABLE_BY_OWNER


def _views(rows: Sequence[Any]) -> list[DeliveryView]:
    return [DeliveryView(d, name, kind, enabled) for d, name, kind, enabled in rows]


def _delivery_select():  # a Select of (Delivery, integration name, kind, enabled)
    return select(Delivery, FormIntegration.name, FormIntegration.kind, FormIntegration.enabled).join(
        FormIntegration, FormIntegration.id == Delivery.integration_id)


async def list_deliveries(
    session: AsyncSession, owner_id: UUID, form_id: UUID, *, state: DeliveryState | None = None,
    states: Sequence[DeliveryState] = (), integration_id: UUID | None = None, response_id: UUID | None = None,
    limit: int = 50, cursor: str | None = None,
) -> tuple[list[DeliveryView], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    form = await get_owned_form(session, owner_id, form_id)
    # Filtering through the form's integrations uses the (integration_id, event_id) index.
    stmt = _delivery_select().where(FormIntegration.form_id == form.id)
    if state is not None:
        stmt = stmt.where(Delivery.state == state)
    if states:
        stmt = stmt.where(Delivery.state.in_(list(states)))
    if integration_id is not None:
        stmt = stmt.where(Delivery.integration_id == integration_id)
    if response_id is not None:
        stmt = stmt.where(Delivery.response_id == response_id)
    if cursor:
        stamp, did = decode_cursor(cursor)
        stmt = stmt.where(or_(Delivery.created_at < stamp, and_(Delivery.created_at == stamp, Delivery.id < did)))
    rows = (await session.execute(
        stmt.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit + 1))).all()
    views = _views(rows[:limit])
    more = len(rows) > limit
    last = views[-1].delivery if views else None
    return views, encode_cursor(last.created_at, last.id) if more and last else None


async def response_deliveries(
    session: AsyncSession, owner_id: UUID, form_id: UUID, response_id: UUID
) -> tuple[Form, list[FormIntegration], dict[UUID, list[DeliveryView]]]:
    """Every integration of the form with its deliveries for this response (newest first).

    A deleted response still has deliveries (its response.deleted event), so it is found through them."""
    form, integrations = await list_integrations(session, owner_id, form_id)
    rows = (await session.execute(
        _delivery_select().where(FormIntegration.form_id == form.id, Delivery.response_id == response_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()))).all()
    if not rows:
        exists = await session.scalar(
            select(Response.id).where(Response.id == response_id, Response.form_id == form.id))
        if exists is None:
            raise not_found("Response")
    by_integration: dict[UUID, list[DeliveryView]] = {i.id: [] for i in integrations}
    for view in _views(rows):
        by_integration.setdefault(view.delivery.integration_id, []).append(view)
    return form, integrations, by_integration


async def get_owned_delivery(session: AsyncSession, owner_id: UUID, delivery_id: UUID) -> DeliveryView:
    row = (await session.execute(
        _delivery_select().join(Form, Form.id == FormIntegration.form_id)
        .where(Delivery.id == delivery_id, Form.owner_id == owner_id))).first()
    if row is None:
        raise not_found("Delivery")
    return _views([row])[0]


def retry_event(delivery: Delivery, kind: str, *, occurred_at: datetime) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "event_id": str(uuid7()),
        "type": DELIVERY_RETRY,
        "occurred_at": occurred_at.isoformat(),
        "form_id": str(delivery.form_id),
        "response_id": str(delivery.response_id) if delivery.response_id else None,
        "delivery_id": str(delivery.id),
        "integration_id": str(delivery.integration_id),
        "kind": kind,
        "original_event_id": str(delivery.event_id),
    }


async def retry_delivery(session: AsyncSession, owner_id: UUID, delivery_id: UUID) -> tuple[DeliveryView, UUID]:
    """Queue a failed, dead or unknown delivery again (409 for any other state).

    The row goes back to pending, due now, with its last error kept; an unknown row stays unknown
    (due now), so the next attempt still looks the earlier one up before sending anything again.
    The state check is part of the UPDATE, so two retries at once cannot both succeed."""
    view = await get_owned_delivery(session, owner_id, delivery_id)
    delivery = view.delivery
    if view.kind not in installed():
        raise ProblemError(409, f"The '{view.kind}' integration is not installed on this server, so this "
                                "delivery cannot be retried.")
    if not view.enabled:
        raise ProblemError(409, f"The integration '{view.integration_name}' is disabled; enable it before retrying.")
    now = utcnow()
    result = await session.execute(
        update(Delivery)
        # The state read above is part of the condition: a row that moved on meanwhile is not touched.
        .where(Delivery.id == delivery.id, Delivery.state == delivery.state,
               Delivery.state.in_(list(RETRYABLE_BY_OWNER)))
        .values(state=_retry_state(delivery.state), next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        await session.refresh(delivery)
        raise ProblemError(409, f"This delivery is {DeliveryState(delivery.state).value}; only failed, dead or "
                                "unknown deliveries can be retried.")
    event = retry_event(delivery, view.kind, occurred_at=now)
    await write_event(session, event)
    await session.refresh(delivery)
    log.info("delivery_retry_requested", delivery_id=str(delivery.id), kind=view.kind)
    return view, UUID(event["event_id"])


def _retry_state(state: DeliveryState) -> DeliveryState:
    return DeliveryState.UNKNOWN if state == DeliveryState.UNKNOWN else DeliveryState.PENDING
