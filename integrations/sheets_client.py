"""The HTTP boundary of the Google Sheets integration: credentials, gspread's client, quota, errors.

- gspread copies its API base URL into module constants at import time, so `SheetsHTTPClient`
  rewrites the URL prefix in `request()` to `SHEETS_API_URL` (see DESIGN.md, Known pitfalls).
- google-auth's service-account credentials get `GOOGLE_TOKEN_URI` via `with_token_uri`, so the
  JWT-bearer grant goes wherever the settings say.
- Google allows 60 write and 60 read requests per minute per user (a service account is one user).
  `WindowLimiter` hands out start times so no window of that length ever holds more than the
  limit (and a busy minute is spread evenly), shared by every sheet this process writes with the same account. Every attempt counts,
  including ones that come back 429, since Google may count them too.
- Every failure becomes `Transient` (429, 5xx, timeouts, a token endpoint that is down: try again)
  or `Permanent` (403, 404, 400, rejected credentials: retrying cannot help), with a message an
  owner can act on. Secrets (the key, tokens) never appear in them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import structlog
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient

from webapp.plugins import parse_retry_after
from webapp.settings import Settings

log = structlog.get_logger("integrations.sheets")

GOOGLE_SHEETS_URL = "https://sheets.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
CONNECT_TIMEOUT = 10.0
# Slack over the quota window: a request leaves here a moment before Google counts it, and that
# moment varies (threads, connections), so the slack has a floor in seconds as well as a share.
WINDOW_SLACK = 0.05
WINDOW_SLACK_FLOOR = 0.25

T = TypeVar("T")


class SheetsError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Transient(SheetsError):
    """Worth trying again. `ambiguous`: the request may have taken effect (a 5xx, a timeout)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class Permanent(SheetsError):
    """Retrying cannot help until someone changes something (sharing, the sheet, the settings)."""


class SheetsHTTPClient(HTTPClient):
    """gspread's own client, sent to another server: the URL prefix is rewritten per request."""

    def __init__(self, auth: Any, session: requests.Session | None = None, *, base_url: str = GOOGLE_SHEETS_URL,
                 timeout: float = 30.0) -> None:
        super().__init__(auth, session)
        self.base_url = base_url.rstrip("/")
        self.set_timeout((CONNECT_TIMEOUT, timeout))

    def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> requests.Response:
        if endpoint.startswith(GOOGLE_SHEETS_URL):
            endpoint = self.base_url + endpoint[len(GOOGLE_SHEETS_URL):]
        return super().request(method, endpoint, *args, **kwargs)


class WindowLimiter:
    """At most `limit` starts in any `period` seconds, and at most `burst` (a thirtieth of the
    limit, at least 1) in any matching fraction of it: 2 in any 2 s for 60 a minute. Thread-safe,
    and free of any event loop.

    The second rule spreads a busy minute evenly. With the first alone, a backlog spent the whole
    quota in its first seconds on small batches and then waited most of a minute, longer than a
    delivery may wait (those went to the 60 s retry tier). Spread out, a sync waits about a second
    and the rows that arrive meanwhile make the next batch bigger instead (bench/pipeline_latency:
    p95 61.7 s → 2.5 s at a steady 200 submissions/s)."""

    def __init__(self, limit: int, period: float = 60.0) -> None:
        self.limit = limit
        self.period = period + max(period * WINDOW_SLACK, WINDOW_SLACK_FLOOR)
        self.burst = max(1, limit // 30)
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self, max_wait: float | None = None) -> tuple[bool, float]:
        """Book the next free start time: (True, seconds to wait for it), or (False, seconds until
        one is free) without booking when that is further away than `max_wait`."""
        with self._lock:
            now = time.monotonic()
            while self._starts and self._starts[0] <= now - self.period:
                self._starts.popleft()
            start = max(now, self._starts[-1]) if self._starts else now
            if len(self._starts) >= self.limit:
                start = max(start, self._starts[-self.limit] + self.period)
            if len(self._starts) >= self.burst:
                start = max(start, self._starts[-self.burst] + self.period * self.burst / self.limit)
            if max_wait is not None and start - now > max_wait:
                return False, start - now
            self._starts.append(start)
            return True, start - now


@dataclass
class Account:
    """One service account: its email, a gspread client and the quota it shares in this process."""

    email: str
    http: SheetsHTTPClient
    reads: WindowLimiter
    writes: WindowLimiter

    async def call(self, kind: str, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """Run one gspread call in a thread once the quota allows it; failures become SheetsErrors.

        `deadline` (event-loop time): rather than wait for a quota slot past it, give up (Transient)."""
        limiter = self.writes if kind == "write" else self.reads
        if not self.http.auth.valid:
            # Fetch the token before booking a quota slot, so the slot is not spent waiting for it.
            try:
                await asyncio.to_thread(self.refresh_token)
            except Exception as exc:
                raise classify(exc, self.email) from exc
        max_wait = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        booked, wait = limiter.reserve(max_wait)
        if not booked:
            raise Transient(f"Paced to stay under Google's quota of {limiter.limit} {kind} requests per minute "
                            f"for {self.email}; the rest follows shortly.", retry_after=wait)
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            raise classify(exc, self.email) from exc

    def refresh_token(self) -> None:
        if not self.http.auth.valid:
            # A plain session for the grant: the authorized one would try to authorize it.
            with requests.Session() as session:
                self.http.auth.refresh(functools.partial(AuthRequest(session), timeout=self.http.timeout))


_accounts: dict[tuple[Any, ...], Account] = {}
_limiters: dict[tuple[str, str, int, float], WindowLimiter] = {}
_cache_lock = threading.Lock()


def limiter(email: str, kind: str, limit: int, period: float = 60.0) -> WindowLimiter:
    with _cache_lock:
        return _limiters.setdefault((email, kind, limit, period), WindowLimiter(limit, period))


def account_for(settings: Settings, *, quota_period: float = 60.0) -> Account:
    """The process-wide client for the configured key file (reloaded when the file changes)."""
    path = settings.google_service_account_file
    if not path:
        raise Permanent("Google Sheets is not set up on this server: the administrator must set "
                        "GOOGLE_SERVICE_ACCOUNT_FILE to a service-account key file.")
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        raise Permanent(f"The service-account key file {path} (GOOGLE_SERVICE_ACCOUNT_FILE) cannot be "
                        "read.") from None
    key = (path, stamp, settings.google_token_uri, settings.sheets_api_url, settings.sheets_timeout)
    with _cache_lock:
        found = _accounts.get(key)
    if found is not None:
        return found
    try:
        creds = service_account.Credentials.from_service_account_file(path, scopes=list(SCOPES))
    except (ValueError, KeyError, OSError):
        # The parser's message may quote the file; name the file and the fix instead.
        raise Permanent(f"The file {path} (GOOGLE_SERVICE_ACCOUNT_FILE) is not a Google service-account "
                        "key in JSON form.") from None
    creds = creds.with_token_uri(settings.google_token_uri)
    email = creds.service_account_email
    limit = settings.sheets_writes_per_minute
    made = Account(
        email=email,
        http=SheetsHTTPClient(creds, base_url=settings.sheets_api_url, timeout=settings.sheets_timeout),
        reads=limiter(email, "read", limit, quota_period),
        writes=limiter(email, "write", limit, quota_period),
    )
    with _cache_lock:
        return _accounts.setdefault(key, made)


def retry_after_seconds(response: requests.Response | None) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After") if response is not None else None)


def classify(exc: BaseException, email: str) -> SheetsError:
    """Turn what gspread, requests or google-auth raised into Transient or Permanent."""
    if isinstance(exc, SheetsError):
        return exc
    if isinstance(exc, APIError):
        status = exc.response.status_code
        message = str(exc.error.get("message", "")) if isinstance(exc.error, dict) else ""
        message = message[:300] or f"HTTP {status}"
        if status == 429:
            return Transient(f"Google Sheets quota exceeded (429): {message}", status=status,
                             retry_after=retry_after_seconds(exc.response))
        if status in (408, 500, 502, 503, 504):
            return Transient(f"Google Sheets answered {status}: {message}", status=status,
                             retry_after=retry_after_seconds(exc.response), ambiguous=True)
        if status == 403:
            return Permanent(f"Google Sheets refused access (403: {message}). Share the spreadsheet with "
                             f"{email} as an editor.", status=status)
        if status == 404:
            return Permanent(f"The spreadsheet was not found (404). Check its URL or id, and share it with "
                             f"{email} as an editor.", status=status)
        if status == 401:
            return Permanent(f"Google did not accept the service account's access token (401: {message}).",
                             status=status)
        return Permanent(f"Google Sheets refused the request ({status}: {message})", status=status)
    if isinstance(exc, auth_exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return Transient(f"Google's token endpoint is unavailable: {_first_line(exc)}")
        return Permanent(f"Google rejected the service account {email}: {_first_line(exc)}. Check that the "
                         "key in GOOGLE_SERVICE_ACCOUNT_FILE is current and not disabled.")
    if isinstance(exc, auth_exceptions.TransportError):
        return Transient(f"Google's token endpoint could not be reached: {_first_line(exc)}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Transient("Google Sheets could not be reached (connection timed out).")
    if isinstance(exc, requests.exceptions.Timeout):
        return Transient("Google Sheets did not answer in time; the change may have been made.", ambiguous=True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Transient(f"Google Sheets could not be reached: {_first_line(exc)}", ambiguous=True)
    if isinstance(exc, requests.exceptions.RequestException):
        return Transient(f"Request to Google Sheets failed: {_first_line(exc)}", ambiguous=True)
    raise exc  # a bug here, not a remote failure: let the caller see it


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
