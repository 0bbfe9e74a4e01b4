"""Request ids and Prometheus metrics, for the web app and for the relay and worker processes.

Every metric object lives here so any process can import and update it:

    from webapp.observability import WORKER_BATCH_SECONDS, DELIVERY_RESULTS
    with WORKER_BATCH_SECONDS.labels("sms").time(): ...

Web (uvicorn with several workers): when PROMETHEUS_MULTIPROC_DIR is set, prometheus_client keeps
each process's values in files there and /metrics adds them up, so any worker answers for all.
Counters and histograms survive a worker's restart (its file stays and is still summed).
The relay and the workers are single processes: `start_metrics_server(port)` serves their own
registry on a side port. Database-derived gauges (outbox backlog and age, deliveries by state)
are computed at scrape time, by web's /metrics only: aggregate them with max(), not sum().
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine

# prometheus_client picks single- or multi-process storage at import, and multi-process storage
# needs its directory before the first metric is created.
if _MULTIPROC_DIR := os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = structlog.get_logger("webapp.observability")
T = TypeVar("T")

# ---- the metrics -------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "formwright_http_requests", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "formwright_http_request_duration_seconds", "Time from request to the last byte of the answer.",
    ["method", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SUBMISSIONS = Counter(
    "formwright_submissions", "Form submissions: outcome accepted or rejected, with the reason of a rejection.",
    ["outcome", "reason"])
RELAY_PUBLISHED = Counter(
    "formwright_relay_published", "Outbox events the relay published to the broker (confirmed).")
RELAY_BATCH_SECONDS = Histogram(
    "formwright_relay_batch_seconds", "Time for the relay to claim, publish and mark one batch.")
WORKER_BATCH_SECONDS = Histogram(
    "formwright_worker_batch_seconds", "Time for an integration worker to handle one batch.", ["integration"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
DELIVERY_RESULTS = Counter(
    "formwright_delivery_results", "Delivery attempts by integration and outcome (delivered, retry, failed, unknown).",
    ["integration", "outcome"])
DEAD_LETTERS = Counter(
    "formwright_dead_letters", "Messages sent to the dead-letter queue after their retries ran out.",
    ["integration"])
EXTERNAL_API_ERRORS = Counter(
    "formwright_external_api_errors", "Errors from external APIs (Sheets, Twilio, webhooks) by HTTP status or error name.",
    ["integration", "code"])

# Names of the gauges computed from the database at scrape time (see database_metrics).
OUTBOX_BACKLOG = "formwright_outbox_backlog"
OUTBOX_OLDEST_AGE = "formwright_outbox_oldest_age_seconds"
DELIVERIES = "formwright_deliveries"
DATABASE_UP = "formwright_database_up"

# Deliveries still needing attention; delivered ones are counted by DELIVERY_RESULTS instead, so the
# scrape never counts a table that grows forever.
OPEN_DELIVERY_STATES = ("pending", "in_flight", "failed", "dead", "unknown")
SCRAPE_DB_TIMEOUT = 2.0


def count_submission(status: int | None = None) -> None:
    """One accepted submission (no status), or one rejected with the HTTP status it was refused with."""
    if status is None:
        _ACCEPTED.inc()
    else:
        SUBMISSIONS.labels("rejected", _REJECT_REASONS.get(status, str(status))).inc()


_ACCEPTED = SUBMISSIONS.labels("accepted", "")
_REJECT_REASONS = {404: "not_found", 409: "not_accepting", 410: "closed", 413: "too_large", 422: "invalid",
                   429: "rate_limited"}


def scrape_registry() -> Collector:
    """The registry that holds every process's values: merged files in multi-process mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(registry: Collector, extra: Iterable[Metric] = ()) -> bytes:
    """Prometheus text for a registry plus families computed just now."""
    body = _generate_latest(registry)
    extra = list(extra)
    if extra:
        body += _generate_latest(_Families(extra))
    return body


# ---- database gauges, computed at scrape time --------------------------------------------------

async def database_metrics(engine: AsyncEngine) -> list[Metric]:
    """Outbox backlog and age, deliveries by integration and state: three index-backed queries."""
    from sqlalchemy import func, select

    from webapp.deliveries.models import Delivery, DeliveryState, FormIntegration
    from webapp.outbox.models import OutboxEvent
    from webapp.plugins import load_integrations

    up = GaugeMetricFamily(DATABASE_UP, "1 when /metrics could read the database just now.")
    unpublished = OutboxEvent.published_at.is_(None)
    open_states = [DeliveryState(s) for s in OPEN_DELIVERY_STATES]
    try:
        async with asyncio.timeout(SCRAPE_DB_TIMEOUT), engine.connect() as conn:
            backlog = await conn.scalar(select(func.count()).select_from(OutboxEvent).where(unpublished))
            oldest = await conn.scalar(
                select(OutboxEvent.created_at).where(unpublished).order_by(OutboxEvent.id).limit(1))
            rows = (await conn.execute(
                select(FormIntegration.kind, Delivery.state, func.count())
                .join(FormIntegration, FormIntegration.id == Delivery.integration_id)
                .where(Delivery.state.in_(open_states))
                .group_by(FormIntegration.kind, Delivery.state))).all()
    except Exception as exc:  # any failure means "cannot tell", reported as database_up 0
        log.warning("metrics_database_unavailable", error=type(exc).__name__)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    backlog_family = GaugeMetricFamily(OUTBOX_BACKLOG, "Outbox events not yet published to the broker.")
    backlog_family.add_metric([], backlog or 0)
    age = GaugeMetricFamily(OUTBOX_OLDEST_AGE, "Age of the oldest unpublished outbox event (0 when none).")
    age.add_metric([], max(0.0, (datetime.now(UTC) - _aware(oldest)).total_seconds()) if oldest else 0.0)
    counts = {(kind, state): 0 for kind in load_integrations().kinds() for state in OPEN_DELIVERY_STATES}
    for kind, state, n in rows:
        counts[(kind, DeliveryState(state).value)] = n
    deliveries = GaugeMetricFamily(DELIVERIES, "Deliveries not yet delivered, by integration and state.",
                                   labels=["integration", "state"])
    for (kind, state), n in sorted(counts.items()):
        deliveries.add_metric([kind, state], n)
    return [up, backlog_family, age, deliveries]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request, db_engine: AsyncEngine) -> Response[bytes]:
    # Served to the scraper inside the cluster only: anything that came through a proxy (the
    # ingress always adds X-Forwarded-For) is treated as from outside.
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        from webapp.errors import not_found

        raise not_found("Page")
    body = render(scrape_registry(), await database_metrics(db_engine))
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


# ---- request ids and HTTP metrics ---------------------------------------------------------------

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a sane token, a fresh one otherwise."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _VALID_REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return os.urandom(16).hex()  # as unique as a uuid4, at a quarter of the cost


class RequestContextMiddleware:
    """Outermost ASGI layer: binds a request id for every log line, echoes it in X-Request-ID, and
    counts the request by route template (never the raw path) and status. No I/O, no locks of its own."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests  # one DEBUG line per request; skipped entirely otherwise
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500
        observed = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last byte leaves, so a client that has its answer can see it counted.
                observed = True
                self._observe(scope, status, time.perf_counter() - start)
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not observed:  # the app failed before answering completely
                self._observe(scope, status, time.perf_counter() - start)
            structlog.contextvars.reset_contextvars(**tokens)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = scope.get("path_template") or UNMATCHED_ROUTE
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if self.log_requests:
            log.debug("request", method=method, route=route, status=status, ms=round(elapsed * 1000, 2))


def instrument(app: Any) -> Any:
    """Wrap the whole app, routing and error handling included, so 404s get ids and counts too."""
    settings = app.state.settings
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler, log_requests=settings.log_level == "DEBUG")
    return app


# ---- a side port for the relay and the workers --------------------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True


class MetricsServer:
    """GET /metrics: this process's metrics; GET /health: 200 while `healthy()` is true, else 503."""

    def __init__(self, port: int, host: str = "0.0.0.0", healthy: Callable[[], bool] | None = None) -> None:  # noqa: S104 - scraped from other pods
        self.healthy = healthy or (lambda: True)
        self._server = make_server(host, port, self._app, _ThreadingServer, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/health":
            ok = self._check()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"status":"ok"}' if ok else b'{"status":"unhealthy"}']
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [render(scrape_registry())]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /health\n"]

    def _check(self) -> bool:
        try:
            return bool(self.healthy())
        except Exception:
            return False

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(port: int, *, host: str = "0.0.0.0", healthy: Callable[[], bool] | None = None) -> MetricsServer | None:  # noqa: S104
    """Serve /metrics and /health on a side port from a daemon thread; port 0 (METRICS_PORT unset) = off.

    `healthy` is the liveness answer, e.g. `lambda: not connection.is_closed`. Call `.stop()` on
    shutdown (the thread is a daemon, so forgetting it never blocks exit)."""
    if not port:
        return None
    try:
        server = MetricsServer(port, host, healthy).start()
    except OSError as exc:  # e.g. several workers of one machine given the same port: run without
        log.warning("metrics_server_unavailable", port=port, error=str(exc))
        return None
    log.info("metrics_server_started", port=server.port)
    return server


def counts_submissions(submit: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorates the submission service: one counter increment per accepted or refused submission."""
    from webapp.errors import ProblemError

    @functools.wraps(submit)
    async def counted(*args: Any, **kwargs: Any) -> T:
        try:
            result = await submit(*args, **kwargs)
        except ProblemError as exc:
            count_submission(exc.status_code)
            raise
        count_submission()
        return result

    return counted


class Stoppable(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def run_process(main: Awaitable[T]) -> T:
    """Run a relay's or a worker's main coroutine on uvloop, as uvicorn runs the web processes:
    about 10 % more events a second through the relay than on asyncio's own loop (bench/relay_bench)."""
    import uvloop

    return uvloop.run(main)  # type: ignore[arg-type]


async def run_until_signalled(service: Stoppable, metrics_port: int) -> None:
    """Run a relay or a worker until SIGTERM or SIGINT (its `stop` finishes the work in hand),
    serving /metrics and /health on `metrics_port` meanwhile (0 = off)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    metrics = start_metrics_server(metrics_port)
    try:
        await service.run()
    finally:
        if metrics is not None:
            metrics.stop()
