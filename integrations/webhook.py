"""Webhook: POST each event as JSON to the owner's URL, signed the Standard Webhooks way.

Headers (https://www.standardwebhooks.com/):
    webhook-id         the event id (the same on every retry, so receivers can drop duplicates)
    webhook-timestamp  seconds since the epoch, when this attempt was made
    webhook-signature  "v1," + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}"))
The secret is "whsec_" + base64 of random bytes; one is generated when the owner leaves it empty.

Delivery is at least once: 2xx is delivered; 408, 429, 5xx, timeouts and broken connections are
retried (the engine backs off; Retry-After is passed on); any other answer is failed with its status
and the start of its body. Redirects are never followed (a redirect could lead to a private address).

Private, loopback, link-local and other non-global addresses are refused unless
WEBHOOK_ALLOW_PRIVATE is set: IP literals are checked before connecting, host names when they are
resolved, by the connector itself, so a name that resolves differently a second time (DNS
rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import msgspec
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from msgspec import Meta
from uuid_utils.compat import uuid7

from webapp import __version__
from webapp.plugins import FieldError, FormContext, Outcome, Result, SettingsAware, Work, parse_retry_after
from webapp.settings import Settings

log = structlog.get_logger("integrations.webhook")

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format marker, not a secret)
SECRET_BYTES = 32
RETRY_STATUSES = frozenset({408, 429})
EXCERPT = 200
USER_AGENT = f"Formwright-Webhooks/{__version__}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key inside a whsec_ secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a whsec_ secret")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("24 to 64 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookConfig(msgspec.Struct, kw_only=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048, description="Where to POST each event (https).")]
    secret: Annotated[str | None, Meta(
        description="Signing secret (whsec_…). Left empty, one is generated.",
        extra_json_schema={"writeOnly": True})] = None

    def __post_init__(self) -> None:
        self.url = self.url.strip()
        self.secret = (self.secret or "").strip() or new_secret()


class BlockedAddress(OSError):
    """The host is (or resolves to) an address webhooks may not reach."""


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the host if any address is not a public one."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if _blocked(ipaddress.ip_address(result["host"])):
                raise BlockedAddress(f"{host} resolves to {result['host']}, a private or reserved address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _url_problem(url: str, allow_private: bool, *, names: bool = True) -> str | None:
    """What is wrong with the URL, without DNS; `names` also refuses well-known local names."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a bad port
    except ValueError:
        return "Enter a web address like https://example.com/hooks/formwright."
    if parts.scheme not in ("http", "https") or not host:
        return "Enter an http:// or https:// address, like https://example.com/hooks/formwright."
    if parts.username or parts.password:
        return "Leave credentials out of the URL; receivers check the signature instead."
    ip = _literal(host)
    if ip is not None and _blocked(ip) and not allow_private:
        return f"{ip} is a private or reserved address; webhooks only go to public addresses."
    if names and ip is None and host.lower().rstrip(".") in {"localhost", "localhost.localdomain"} \
            and not allow_private:
        return "localhost is not reachable from here; webhooks only go to public addresses."
    return None


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text[:EXCERPT] + ("…" if len(text) > EXCERPT else "")


class WebhookIntegration(SettingsAware):
    kind = "webhook"
    title = "Webhook"
    config_schema = WebhookConfig
    batch_size = 10
    concurrency = 4  # requests in flight at once per batch

    def validate_config(self, config: WebhookConfig, form: FormContext) -> list[FieldError]:
        errors = []
        problem = _url_problem(config.url, self.settings.webhook_allow_private)
        if problem:
            errors.append(FieldError("config.url", problem))
        try:
            secret_bytes(config.secret or "")
        except ValueError:
            errors.append(FieldError("config.secret", "The secret must be whsec_ followed by 24 to 64 bytes in "
                                                      "base64; leave it empty to have one generated."))
        return errors

    def required_questions(self, config: WebhookConfig) -> Sequence[UUID]:
        return ()

    def _session(self, settings: Settings) -> aiohttp.ClientSession:
        resolver = None if settings.webhook_allow_private else _PublicOnlyResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True,
                                     headers={"User-Agent": USER_AGENT})

    async def handle(self, batch: Sequence[Work]) -> list[Result]:
        settings = self.settings
        limit = asyncio.Semaphore(self.concurrency)
        async with self._session(settings) as session:

            async def one(work: Work) -> Result:
                async with limit:
                    try:
                        return await self._post(session, settings, work.config, work.event,
                                                delivery_id=str(work.delivery_id))
                    except Exception as exc:  # one bad item must not sink the batch
                        log.exception("webhook_unexpected_error", delivery_id=str(work.delivery_id))
                        return Result(Outcome.RETRY, f"Unexpected error ({type(exc).__name__}).")

            return list(await asyncio.gather(*(one(w) for w in batch)))

    async def _post(self, session: aiohttp.ClientSession, settings: Settings, config: WebhookConfig,
                    event: dict[str, Any], *, delivery_id: str) -> Result:
        # Host names are checked by the resolver at connect time (the answer may have changed).
        problem = _url_problem(config.url, settings.webhook_allow_private, names=False)
        if problem:
            return Result(Outcome.FAILED, problem)
        body = msgspec.json.encode(event)
        msg_id = str(event.get("event_id") or uuid7())
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(config.secret or "", msg_id, timestamp, body),
        }
        host = urlsplit(config.url).hostname
        try:
            async with session.post(config.url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
                text = (await response.content.read(4 * EXCERPT)).decode("utf-8", "replace")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                location = response.headers.get("Location", "")
        except TimeoutError:
            result = Result(Outcome.RETRY, f"{host} did not answer within {settings.webhook_timeout:g} s.")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                result = Result(Outcome.FAILED, f"{exc.os_error}; webhooks only go to public addresses.")
            else:
                result = Result(Outcome.RETRY, f"Could not connect to {host} ({type(exc).__name__}).")
        except aiohttp.ClientError as exc:
            result = Result(Outcome.RETRY, f"The connection to {host} failed ({type(exc).__name__}).")
        else:
            result = _classify(status, text, retry_after, location)
        log.info("webhook_result", delivery_id=delivery_id, host=host, outcome=result.outcome.value,
                 detail=result.detail[:80])
        return result

    async def send_test(self, config: WebhookConfig, form: FormContext) -> Result:
        event = {"schema": 1, "event_id": str(uuid7()), "type": "webhook.test",
                 "occurred_at": datetime.now(UTC).isoformat(), "form_id": str(form.form_id),
                 "form_title": form.title, "test": True}
        settings = self.settings
        async with self._session(settings) as session:
            return await self._post(session, settings, config, event, delivery_id="test")


def _classify(status: int, text: str, retry_after: float | None, location: str) -> Result:
    if 200 <= status < 300:
        return Result(Outcome.DELIVERED, f"HTTP {status}", external_ref=f"HTTP {status}")
    if status in RETRY_STATUSES or status >= 500:
        return Result(Outcome.RETRY, f"HTTP {status}: {_excerpt(text)}".rstrip(": "), retry_after=retry_after)
    if 300 <= status < 400:
        return Result(Outcome.FAILED, f"HTTP {status}: the URL redirects{f' to {location[:200]}' if location else ''}"
                                      "; redirects are not followed, save the final address.")
    return Result(Outcome.FAILED, f"HTTP {status}: {_excerpt(text)}".rstrip(": "))


integration = WebhookIntegration()
