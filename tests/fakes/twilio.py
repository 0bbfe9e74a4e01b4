"""A fake Twilio REST API (the 2010-04-01 Messages resource) on 127.0.0.1, in a thread.

The real twilio-python client talks to it through the `TWILIO_API_URL` setting:

    with FakeTwilio() as fake:
        settings = replace(settings, twilio_api_url=fake.url, twilio_account_sid=fake.account_sid,
                           twilio_auth_token=fake.auth_token)
        ...
        assert [m["body"] for m in fake.messages_to("+14155550101")] == ["Hello"]

It speaks Twilio's shapes: form-encoded POSTs with Basic auth (account sid / auth token, checked),
201 message JSON with RFC 2822 dates and string counters, list pages with Twilio's paging fields and
the `To`, `From`, `DateSent`, `DateSent>`, `DateSent<` filters (`DateSent>=2024-01-31` in a query
string is the key `DateSent>`), and error bodies {"code", "message", "more_info", "status"}.

Switches, for the next create calls unless said otherwise:
    fail_next(429, retry_after=1)     rate limited, nothing stored
    fail_next(500, stored=True)       the message IS stored, the answer is a 500
    hang_next(seconds)                stored, then the answer waits `seconds` (past the client's timeout)
    fail_number(number, 21610)        a permanent error for one recipient (21211, 21610, 21614)
    delay = 0.2                       every answer is that slow
    auto_send = False                 messages stay "queued" with no date_sent (as right after a create)
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
STATUS_CODES = {429: 20429, 500: 20500, 503: 20503}
POOL_NUMBER = "+15005550006"  # the number a messaging service "chooses"


def rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC)) if moment else None


def _segments(body: str) -> int:
    # Close enough for a fake: ASCII counts as GSM-7, anything else as UCS-2.
    single, multi = (160, 153) if body.isascii() else (70, 67)
    n = len(body)
    return 1 if n <= single else -(-n // multi)


def _parse_when(raw: str) -> datetime | date | None:
    raw = raw.strip()
    try:
        if "T" in raw:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return date.fromisoformat(raw)
    except ValueError:
        return None


@dataclass
class Fault:
    status: int
    code: int | None = None
    stored: bool = False  # store the message before failing (the outcome the client cannot know)
    hang: float = 0.0  # hold the answer this long
    retry_after: float | None = None
    on: str = "create"  # create | list | any


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    user: str | None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class FakeTwilio:
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.messages: list[dict[str, Any]] = []  # stored, in creation order, as Twilio would list them
        self.requests: list[Recorded] = []
        self.number_errors: dict[str, int] = {}
        self.delay = 0.0
        self.auto_send = True
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-twilio",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # release hanging answers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- switches and views --------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, code: int | None = None, stored: bool = False,
                  retry_after: float | None = None, on: str = "create") -> None:
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(status, code or STATUS_CODES.get(status), stored, 0.0, retry_after, on))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Store the next message(s), then answer only after `seconds` (the unknown-outcome case)."""
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(201, stored=True, hang=seconds))

    def fail_number(self, number: str, code: int) -> None:
        with self._lock:
            self.number_errors[number] = code

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self.messages if m["to"] == number]

    def bodies(self) -> list[str]:
        with self._lock:
            return [m["body"] for m in self.messages]

    def creates(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    # ---- behaviour (called from the handler threads) -------------------------------------------

    def _take_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.on in (kind, "any"):
                    del self._faults[i]
                    return fault
        return None

    def _store(self, form: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Store a message; return (the create answer, the stored record)."""
        now = datetime.now(UTC)
        sid = "SM" + secrets.token_hex(16)
        service = form.get("MessagingServiceSid") or None
        body = form["Body"]
        record = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": None if service else form.get("From"),
            "messaging_service_sid": service, "num_media": "0", "num_segments": str(_segments(body)),
            "price": None, "price_unit": "USD", "sid": sid, "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"{API}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": form["To"], "uri": f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        answer = dict(record)
        if self.auto_send:  # Twilio sends it right after answering
            record.update(status="sent", date_sent=now, date_updated=now)
            if service:
                record["from"] = POOL_NUMBER
        with self._changed:
            self.messages.append(record)
            self._changed.notify_all()
        return answer, record

    def _list(self, query: dict[str, str], path: str) -> dict[str, Any]:
        with self._lock:
            items = list(self.messages)
        for key, pick in (("To", "to"), ("From", "from")):
            if key in query:
                items = [m for m in items if m[pick] == query[key]]
        for key, test in (("DateSent", lambda a, b: a == b), ("DateSent>", lambda a, b: a >= b),
                          ("DateSent<", lambda a, b: a <= b)):
            if key in query:
                when = _parse_when(query[key])
                if when is None:
                    continue
                if isinstance(when, datetime):
                    items = [m for m in items if m["date_sent"] and test(m["date_sent"], when)]
                else:
                    items = [m for m in items if m["date_sent"] and test(m["date_sent"].date(), when)]
        items.sort(key=lambda m: m["date_sent"] or m["date_created"], reverse=True)  # newest first
        size = max(1, min(1000, int(query.get("PageSize", "50") or 50)))
        page = max(0, int(query.get("Page", "0") or 0))
        start = page * size
        chunk = items[start:start + size]
        filters = {k: v for k, v in query.items() if k not in {"PageSize", "Page", "PageToken"}}

        def uri(n: int, token: bool = False) -> str:
            params = {**filters, "PageSize": size, "Page": n}
            if token:
                params["PageToken"] = "PASM" + secrets.token_hex(16)
            return f"{path}?{urlencode(params)}"

        return {
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": uri(0),
            "messages": [_public(m) for m in chunk],
            "next_page_uri": uri(page + 1, token=True) if start + size < len(items) else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": uri(page),
        }


def _public(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in ("date_created", "date_sent", "date_updated"):
        out[key] = rfc2822(record[key])
    return out


def _error(code: int, **fmt: str) -> tuple[int, dict[str, Any]]:
    status, message = ERRORS.get(code, (400, "Error"))
    return status, {"code": code, "message": message.format(**fmt) if fmt else message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.close_connection = True

    def _auth_user(self) -> tuple[str | None, bool]:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, False
        fake = self.twilio
        return user, user == fake.account_sid and secrets.compare_digest(password, fake.auth_token)

    def _handle(self, method: str) -> None:
        fake = self.twilio
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        user, authorised = self._auth_user()
        with fake._lock:
            fake.requests.append(Recorded(method, parts.path, query, form, user))
        if fake.delay:
            fake._closing.wait(fake.delay)
        match = re.fullmatch(rf"{API}/Accounts/(AC[0-9a-f]{{32}})(?:/Messages(?:/(SM[0-9a-f]{{32}}))?)?\.json",
                             parts.path)
        if match is None:
            self._send(*_error(20404, path=parts.path))
            return
        account, message_sid = match.group(1), match.group(2)
        if not authorised or account != fake.account_sid:
            self._send(*_error(20003), headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return
        single = {k: v[-1] for k, v in (form if method == "POST" else query).items()}
        is_messages = parts.path.endswith("/Messages.json")
        if method == "POST" and is_messages:
            self._create(single)
        elif method == "GET" and is_messages:
            fault = fake._take_fault("list")
            if fault is not None:
                self._send(*self._fault_body(fault))
                return
            self._send(200, fake._list(single, parts.path))
        elif method == "GET" and message_sid:
            with fake._lock:
                found = next((m for m in fake.messages if m["sid"] == message_sid), None)
            if found is None:
                self._send(*_error(20404, path=parts.path))
            else:
                self._send(200, _public(found))
        elif method == "GET":
            now = rfc2822(datetime.now(UTC))
            self._send(200, {"sid": account, "friendly_name": "Formwright test account", "status": "active",
                             "type": "Full", "date_created": now, "date_updated": now,
                             "uri": f"{API}/Accounts/{account}.json", "owner_account_sid": account})
        else:
            self._send(405, {"code": 20004, "message": "Method not allowed", "status": 405,
                             "more_info": "https://www.twilio.com/docs/errors/20004"})

    def _fault_body(self, fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, body = _error(fault.code) if fault.code else (fault.status, {
            "code": None, "message": "Error", "more_info": "", "status": fault.status})
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return fault.status, {**body, "status": fault.status}, headers

    def _create(self, form: dict[str, str]) -> None:
        fake = self.twilio
        to, body = form.get("To", "").strip(), form.get("Body", "")
        if not to:
            self._send(*_error(21604))
        elif not body.strip():
            self._send(*_error(21602))
        elif len(body) > 1600:
            self._send(*_error(21617))
        elif not form.get("From") and not form.get("MessagingServiceSid"):
            self._send(*_error(21603))
        elif not E164.match(to):
            self._send(*_error(21211, to=to))
        elif to in fake.number_errors:
            self._send(*_error(fake.number_errors[to], to=to))
        else:
            fault = fake._take_fault("create")
            if fault is None:
                answer, _ = fake._store(form)
                self._send(201, _public(answer))
            elif fault.hang:
                answer, _ = fake._store(form)
                fake._closing.wait(fault.hang)
                self._send(201, _public(answer))
            else:
                if fault.stored:
                    fake._store(form)
                self._send(*self._fault_body(fault))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
