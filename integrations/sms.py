"""Twilio SMS: one text message per new response, to the number given in a phone question.

Never twice. The engine claims the ledger row (committed) before `handle` runs. A call whose outcome
we cannot know — a read timeout, a 5xx, a connection dropped after the request went out — returns
UNKNOWN, never RETRY: the engine then hands the row back with `previous_claim_at` set, and we look
the message up (messages to that number since the earlier claim, same body and sender) before
sending. Found → delivered with that sid; not found → send. A lookup that fails stays UNKNOWN.
429 and failures to connect (nothing left this machine) are RETRY. Twilio's permanent errors
(21211, 21610, 21614, and any other 4xx) are FAILED with a reason an owner can read.

Known limit of matching by body: two responses that text the same number the same words within the
lookup window cannot be told apart (Twilio keeps no idempotency key); the earlier message then
counts for both. That errs on the side of "never twice".

twilio-python is synchronous (requests), so each delivery runs in a worker thread with a client of
its own, pointed at `TWILIO_API_URL` by rewriting the URL prefix (see DESIGN.md, Known pitfalls).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
import phonenumbers
import requests
import structlog
import urllib3
from msgspec import Meta
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from integrations import templating
from webapp.forms.models import QuestionKind
from webapp.outbox.events import RESPONSE_SUBMITTED
from webapp.plugins import FieldError, FormContext, Outcome, Result, SettingsAware, Work, parse_retry_after
from webapp.settings import Settings

log = structlog.get_logger("integrations.sms")

TWILIO_DEFAULT_URL = "https://api.twilio.com"
MAX_BODY = 1600  # Twilio refuses longer bodies (error 21617)
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
MESSAGING_SERVICE_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
# Twilio's clock and ours may differ; look a little further back than the earlier claim.
CLOCK_SKEW = timedelta(minutes=2)
LOOKUP_LIMIT = 200
PERMANENT_REASONS = {
    21211: "The number is not a valid phone number",
    21610: "The recipient has opted out of messages from this sender (they replied STOP)",
    21614: "The number is not a mobile number",
}

# twilio-python logs query strings (recipient numbers) at INFO: keep its chatter to warnings.
_http_log = logging.getLogger("integrations.sms.twilio_http")
_http_log.setLevel(logging.WARNING)


class SmsConfig(msgspec.Struct, kw_only=True):
    phone_question_id: Annotated[UUID, Meta(description="The phone question whose answer is the recipient.")]
    template: Annotated[str, Meta(min_length=1, max_length=MAX_BODY, description=(
        "The message. Placeholders: {{form.title}}, {{response.id}}, {{response.submitted_at}}, "
        "{{answers.<question id or its last 8 characters>}}."))]
    from_number: Annotated[str | None, Meta(description="Sender number in E.164, e.g. +14155550100.")] = None
    messaging_service_sid: Annotated[str | None, Meta(
        description="Or a Twilio messaging service SID (MG followed by 32 hex digits).")] = None

    def __post_init__(self) -> None:
        # HTML forms send empty strings for fields left blank.
        self.from_number = (self.from_number or "").strip() or None
        self.messaging_service_sid = (self.messaging_service_sid or "").strip() or None


def _valid_e164(number: str) -> bool:
    if not E164_RE.match(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


class _RebasedHttpClient(TwilioHttpClient):
    """twilio-python's own HTTP client, sent to another base URL, remembering a 429's Retry-After."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_http_log)
        self.base_url = base_url.rstrip("/")
        self.retry_after: float | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any):  # type: ignore[override]
        if url.startswith(TWILIO_DEFAULT_URL) and self.base_url != TWILIO_DEFAULT_URL:
            url = self.base_url + url[len(TWILIO_DEFAULT_URL):]
        response = super().request(method, url, *args, **kwargs)
        if response.status_code == 429:
            self.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the request cannot have reached Twilio (refused, DNS, TLS handshake)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


@dataclass(frozen=True, slots=True)
class _Message:
    to: str
    body: str
    from_number: str | None
    messaging_service_sid: str | None

    @property
    def sender(self) -> dict[str, str]:
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        return {"from_": self.from_number or ""}

    def matches(self, found: Any) -> bool:
        body = (found.body or "").strip()
        if body != self.body.strip() and not body.startswith(self.body.strip()):
            return False
        if found.direction and not str(found.direction).startswith("outbound"):
            return False
        if self.messaging_service_sid:
            return found.messaging_service_sid == self.messaging_service_sid
        return found.from_ == self.from_number


class SmsIntegration(SettingsAware):
    kind = "sms"
    title = "Twilio SMS"
    config_schema = SmsConfig
    batch_size = 10
    concurrency = 4  # Twilio calls in flight at once per batch

    # ---- configuration -------------------------------------------------------------------------

    def validate_config(self, config: SmsConfig, form: FormContext) -> list[FieldError]:
        errors = []
        question = next((q for q in form.questions if q.id == config.phone_question_id), None)
        if question is None:
            errors.append(FieldError("config.phone_question_id", "Choose a phone question of this form."))
        elif question.kind != QuestionKind.PHONE:
            errors.append(FieldError("config.phone_question_id",
                                     f"“{question.text}” is not a phone question; choose a phone question."))
        elif question.archived:
            errors.append(FieldError("config.phone_question_id",
                                     f"“{question.text}” is archived; choose an active phone question."))
        if not config.template.strip():
            errors.append(FieldError("config.template", "Write the message to send."))
        errors += [FieldError("config.template", problem) for problem in templating.check(config.template, form)]
        if config.from_number and config.messaging_service_sid:
            errors.append(FieldError("config.from_number",
                                     "Give a sender number or a messaging service SID, not both."))
        elif not config.from_number and not config.messaging_service_sid:
            errors.append(FieldError("config.from_number", "Give a sender number in E.164 (e.g. +14155550100) "
                                                           "or a messaging service SID (MG…)."))
        elif config.from_number and not _valid_e164(config.from_number):
            errors.append(FieldError("config.from_number",
                                     "Write the sender number in E.164: a + and the country code, "
                                     "e.g. +14155550100."))
        elif config.messaging_service_sid and not MESSAGING_SERVICE_RE.match(config.messaging_service_sid):
            errors.append(FieldError("config.messaging_service_sid",
                                     "A messaging service SID is MG followed by 32 hex digits."))
        return errors

    def required_questions(self, config: SmsConfig) -> Sequence[UUID]:
        return (config.phone_question_id,)

    def preview(self, config: SmsConfig, form: FormContext) -> dict[str, Any]:
        """The message with sample answers, and its length in SMS segments (for the settings page)."""
        text = templating.render(config.template, templating.sample_values(form), max_chars=MAX_BODY)
        encoding, count = templating.segments(text)
        return {"text": text, "characters": len(text), "encoding": encoding, "segments": count,
                "summary": templating.describe_length(text)}

    # ---- delivery ------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[Work]) -> list[Result]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(work: Work) -> Result:
            async with limit:
                try:
                    return await self._deliver(work)
                except Exception as exc:  # a bug must not be read as "not sent": look it up first
                    log.exception("sms_unexpected_error", delivery_id=str(work.delivery_id))
                    return Result(Outcome.UNKNOWN, f"Unexpected error ({type(exc).__name__}); the message "
                                                   "will be looked up before any resend.")

        return list(await asyncio.gather(*(one(w) for w in batch)))

    async def _deliver(self, work: Work) -> Result:
        event = work.event
        if event.get("type") != RESPONSE_SUBMITTED:
            return Result(Outcome.DELIVERED, f"Not applicable: a text is sent only for new responses "
                                             f"(this is {event.get('type')}).")
        settings = self.settings
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            return Result(Outcome.FAILED, "Twilio is not configured on this server "
                                          "(set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN).")
        config: SmsConfig = work.config
        wanted = str(config.phone_question_id).lower()
        to = next((str(a.get("value") or "") for a in event.get("answers") or ()
                   if str(a.get("question_id", "")).lower() == wanted), "")
        if not to:
            return Result(Outcome.FAILED, "The response has no answer to the phone question, so there is no "
                                          "one to text.")
        if not _valid_e164(to):
            return Result(Outcome.FAILED, "The phone answer is not a valid E.164 number.")
        body = templating.render(config.template, templating.event_values(work.form, event), max_chars=MAX_BODY)
        if not body.strip():
            return Result(Outcome.FAILED, "The message is empty once the answers are filled in; check the template.")
        message = _Message(to, body, config.from_number, config.messaging_service_sid)
        result = await asyncio.to_thread(
            self._send_sync, settings, message, work.previous_claim_at, work.previous_external_ref)
        log.info("sms_result", delivery_id=str(work.delivery_id), outcome=result.outcome.value,
                 sid=result.external_ref, attempt=work.attempt)
        return result

    def _client(self, settings: Settings) -> tuple[Client, _RebasedHttpClient]:
        http = _RebasedHttpClient(settings.twilio_api_url, settings.twilio_timeout)
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                        account_sid=settings.twilio_account_sid, http_client=http, environment={})
        return client, http

    def _send_sync(self, settings: Settings, message: _Message, previous_claim_at: datetime | None,
                   previous_ref: str | None) -> Result:
        client, http = self._client(settings)
        if previous_claim_at is not None or previous_ref:
            try:
                found = _find_sent(client, message, previous_claim_at, previous_ref)
            except (TwilioException, requests.RequestException) as exc:
                return Result(Outcome.UNKNOWN, "An earlier attempt may have sent this message and Twilio could "
                                               f"not be asked ({_short(exc)}); it will be looked up again before "
                                               "any resend.")
            if found is not None:
                return Result(Outcome.DELIVERED, f"Sent by an earlier attempt as {found.sid} ({found.status}); "
                                                 "found by looking it up, not resent.", external_ref=found.sid)
        try:
            sent = client.messages.create(to=message.to, body=message.body, **message.sender)
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                return Result(Outcome.RETRY, f"Could not reach Twilio ({_short(exc)}); nothing was sent.")
            return Result(Outcome.UNKNOWN, "The connection to Twilio broke after the message was sent; it will "
                                           "be looked up before any resend.")
        except requests.exceptions.Timeout:
            return Result(Outcome.UNKNOWN, f"Twilio did not answer within {settings.twilio_timeout:g} s; the "
                                           "message may have been sent. It will be looked up before any resend.")
        except TwilioRestException as exc:
            return _rest_error(exc, http.retry_after)
        _, segments = templating.segments(message.body)
        return Result(Outcome.DELIVERED, f"Sent as {sent.sid} ({sent.status}, "
                                         f"{sent.num_segments or segments} segment(s)).", external_ref=sent.sid)

    async def send_test(self, config: SmsConfig, form: FormContext) -> Result:
        """There is no recipient to text yet, so check the credentials and the sender, and show the length."""
        settings = self.settings
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            return Result(Outcome.FAILED, "Twilio is not configured on this server "
                                          "(set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN).")
        preview = self.preview(config, form)

        def check() -> Result:
            client, _ = self._client(settings)
            try:
                account = client.api.v2010.accounts(settings.twilio_account_sid).fetch()
            except TwilioRestException as exc:
                if exc.status in (401, 403, 404):
                    return Result(Outcome.FAILED, "Twilio refused the credentials; check TWILIO_ACCOUNT_SID and "
                                                  f"TWILIO_AUTH_TOKEN (Twilio {exc.code or exc.status}).")
                return Result(Outcome.RETRY, f"Twilio answered {exc.status}; try again in a moment.")
            except (TwilioException, requests.RequestException) as exc:
                return Result(Outcome.RETRY, f"Could not reach Twilio ({_short(exc)}).")
            if account.status != "active":
                return Result(Outcome.FAILED, f"The Twilio account is {account.status}, not active.")
            return Result(Outcome.DELIVERED, f"Twilio accepted the credentials (account “{account.friendly_name}”). "
                                             f"A sample message is {preview['summary']}.")

        return await asyncio.to_thread(check)


def _short(exc: BaseException) -> str:
    return type(exc).__name__


def _rest_error(exc: TwilioRestException, retry_after: float | None) -> Result:
    code = exc.code
    if exc.status == 429:
        return Result(Outcome.RETRY, f"Twilio is limiting the sending rate (429{f', Twilio {code}' if code else ''}); "
                                     "will try again.", retry_after=retry_after)
    if exc.status >= 500:
        return Result(Outcome.UNKNOWN, f"Twilio answered {exc.status}; the message may have been sent. It will be "
                                       "looked up before any resend.")
    if code in PERMANENT_REASONS:
        return Result(Outcome.FAILED, f"{PERMANENT_REASONS[code]} (Twilio {code}).")
    if exc.status in (401, 403) or code == 20003:
        return Result(Outcome.FAILED, "Twilio refused the credentials; check TWILIO_ACCOUNT_SID and "
                                      f"TWILIO_AUTH_TOKEN (Twilio {code or exc.status}).")
    reason = (exc.msg or f"HTTP {exc.status}").strip().rstrip(".")[:300]
    return Result(Outcome.FAILED, f"Twilio refused the message: {reason} (Twilio {code or exc.status}).")


def _find_sent(client: Client, message: _Message, since: datetime | None, previous_ref: str | None) -> Any:
    """The message an earlier attempt sent, or None. Raises when Twilio cannot be asked."""
    if previous_ref and previous_ref.startswith("SM"):
        try:
            found = client.messages(previous_ref).fetch()
        except TwilioRestException as exc:
            if exc.status != 404:
                raise
        else:
            if found.to == message.to and found.status != "failed":
                return found
    if since is None:
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    since = since - CLOCK_SKEW
    # DateSent filters by day; a message still queued has no date_sent yet, so the newest
    # messages to the number are read as well and both are filtered by creation time here.
    sent = client.messages.list(to=message.to, date_sent_after=since.strftime("%Y-%m-%d"), limit=LOOKUP_LIMIT)
    recent = client.messages.list(to=message.to, limit=50)
    for found in (*recent, *sent):
        created = found.date_created or found.date_sent
        if created is not None and created < since:
            continue
        if found.status != "failed" and message.matches(found):  # "failed": Twilio never sent it
            return found
    return None


integration = SmsIntegration()
