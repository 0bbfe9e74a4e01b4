"""Settings read from the environment only. Every setting has a safe default for `make run`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = ROOT / "var" / "formwright.db"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise SettingsError(f"{name} must be more than 0 and at most 3600 seconds, got {value}")
    return value


def _tiers(name: str, default: str) -> tuple[int, ...]:
    raw = _env(name, default)
    try:
        tiers = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated whole seconds like 10,60,600,3600, got {raw!r}") from None
    if not tiers or any(t < 1 for t in tiers) or list(tiers) != sorted(set(tiers)):
        raise SettingsError(f"{name} must list increasing delays of at least 1 second, got {raw!r}")
    return tiers


def _bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def normalise_database_url(url: str) -> str:
    """Accept the plain URLs people paste and pick the async driver we ship."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    db_pool_size: int = 10
    db_pool_timeout: float = 10.0
    db_echo: bool = False
    secret_key: str = field(default="dev-insecure-secret-key-change-me", repr=False)
    default_phone_region: str = "US"
    max_body_bytes: int = 1_000_000
    log_level: str = "INFO"
    metrics_port: int = 0  # relay and workers serve /metrics and /health here; 0 = off
    amqp_url: str = ""
    # Integrations: the HTTP boundary is configurable so tests and staging can use other servers.
    sheets_api_url: str = "https://sheets.googleapis.com"
    google_token_uri: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
    google_service_account_file: str = ""
    # Google counts 60 write (and 60 read) requests per minute per user; stay under it per account.
    sheets_writes_per_minute: int = 60
    sheets_timeout: float = 30.0
    twilio_api_url: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    webhook_allow_private: bool = False
    # How long a Twilio or webhook call may take before its outcome counts as unknown / retried.
    twilio_timeout: float = 10.0
    webhook_timeout: float = 10.0
    # Browser sessions and abuse protection.
    session_days: int = 14
    submit_rate_per_minute: int = 30
    login_attempts_per_15min: int = 10
    # Delivery pipeline: relay, broker workers and the embedded (no broker) dispatcher.
    amqp_namespace: str = ""  # prefix for exchange and queue names, so tests can isolate themselves
    # Off for Settings() built in code (tests); from_env turns it on, so `make run` delivers in-process.
    embedded_delivery: bool = False
    # Outbox rows per relay pass: each pass also pays three statements, a commit and a wait for
    # confirms, so a bigger pass drains a backlog faster (100 → 250: +10-18 % in bench/relay_bench).
    outbox_batch_size: int = 250
    outbox_poll_seconds: float = 1.0  # fallback when no LISTEN/NOTIFY wake-up arrives
    publish_timeout: float = 10.0
    retry_tiers: tuple[int, ...] = (10, 60, 600, 3600)
    delivery_max_attempts: int = 6
    delivery_handler_timeout: float = 60.0  # a call still running then counts as unknown
    delivery_claim_timeout: float = 120.0  # an in-flight claim older than this was abandoned
    worker_linger: float = 0.2  # how long a worker waits to fill a batch

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls) -> Settings:
        env = _env("APP_ENV", "development").lower()
        if env not in {"development", "production", "test"}:
            raise SettingsError(f"APP_ENV must be development, production or test, got {env!r}")
        secret = os.environ.get("SECRET_KEY", "").strip()
        if not secret:
            if env == "production":
                raise SettingsError("SECRET_KEY must be set in production (a long random string)")
            secret = cls.secret_key
        region = _env("DEFAULT_PHONE_REGION", "US").upper()
        if len(region) != 2 or not region.isalpha():
            raise SettingsError(f"DEFAULT_PHONE_REGION must be a two-letter region code, got {region!r}")
        return cls(
            env=env,
            host=_env("HOST", "127.0.0.1"),
            port=_int("PORT", 8000, minimum=1),
            database_url=normalise_database_url(_env("DATABASE_URL", cls.database_url)),
            db_pool_size=_int("DB_POOL_SIZE", 10, minimum=1),
            db_pool_timeout=_seconds("DB_POOL_TIMEOUT_SECONDS", 10.0),
            db_echo=_bool("DB_ECHO", False),
            secret_key=secret,
            default_phone_region=region,
            max_body_bytes=_int("MAX_BODY_BYTES", 1_000_000, minimum=1024),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            metrics_port=_int("METRICS_PORT", 0, minimum=0),
            amqp_url=_env("AMQP_URL", ""),
            sheets_api_url=_env("SHEETS_API_URL", cls.sheets_api_url).rstrip("/"),
            google_token_uri=_env("GOOGLE_TOKEN_URI", cls.google_token_uri),
            google_service_account_file=_env("GOOGLE_SERVICE_ACCOUNT_FILE", ""),
            sheets_writes_per_minute=_int("SHEETS_WRITES_PER_MINUTE", 60, minimum=1),
            sheets_timeout=_seconds("SHEETS_TIMEOUT_SECONDS", 30.0),
            twilio_api_url=_env("TWILIO_API_URL", cls.twilio_api_url).rstrip("/"),
            twilio_account_sid=_env("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN", "").strip(),
            webhook_allow_private=_bool("WEBHOOK_ALLOW_PRIVATE", False),
            twilio_timeout=_seconds("TWILIO_TIMEOUT_SECONDS", 10.0),
            webhook_timeout=_seconds("WEBHOOK_TIMEOUT_SECONDS", 10.0),
            session_days=_int("SESSION_DAYS", 14, minimum=1),
            submit_rate_per_minute=_int("SUBMIT_RATE_PER_MINUTE", 30, minimum=0),
            login_attempts_per_15min=_int("LOGIN_ATTEMPTS_PER_15MIN", 10, minimum=1),
            amqp_namespace=_env("AMQP_NAMESPACE", ""),
            embedded_delivery=_bool("EMBEDDED_DELIVERY", True),
            outbox_batch_size=_int("OUTBOX_BATCH_SIZE", 250, minimum=1),
            outbox_poll_seconds=_seconds("OUTBOX_POLL_SECONDS", 1.0),
            publish_timeout=_seconds("AMQP_PUBLISH_TIMEOUT_SECONDS", 10.0),
            retry_tiers=_tiers("DELIVERY_RETRY_TIERS", "10,60,600,3600"),
            delivery_max_attempts=_int("DELIVERY_MAX_ATTEMPTS", 6, minimum=1),
            delivery_handler_timeout=_seconds("DELIVERY_HANDLER_TIMEOUT_SECONDS", 60.0),
            delivery_claim_timeout=_seconds("DELIVERY_CLAIM_TIMEOUT_SECONDS", 120.0),
            worker_linger=_seconds("WORKER_LINGER_SECONDS", 0.2),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
