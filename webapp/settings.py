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
    db_echo: bool = False
    secret_key: str = field(default="dev-insecure-secret-key-change-me", repr=False)
    default_phone_region: str = "US"
    max_body_bytes: int = 1_000_000
    log_level: str = "INFO"
    amqp_url: str = ""
    # Integrations: the HTTP boundary is configurable so tests and staging can use other servers.
    sheets_api_url: str = "https://sheets.googleapis.com"
    google_token_uri: str = "https://oauth2.googleapis.com/token"
    google_service_account_file: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    webhook_allow_private: bool = False
    # Browser sessions and abuse protection.
    session_days: int = 14
    submit_rate_per_minute: int = 30
    login_attempts_per_15min: int = 10

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
            db_echo=_bool("DB_ECHO", False),
            secret_key=secret,
            default_phone_region=region,
            max_body_bytes=_int("MAX_BODY_BYTES", 1_000_000, minimum=1024),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            amqp_url=_env("AMQP_URL", ""),
            sheets_api_url=_env("SHEETS_API_URL", cls.sheets_api_url).rstrip("/"),
            google_token_uri=_env("GOOGLE_TOKEN_URI", cls.google_token_uri),
            google_service_account_file=_env("GOOGLE_SERVICE_ACCOUNT_FILE", ""),
            twilio_api_url=_env("TWILIO_API_URL", cls.twilio_api_url).rstrip("/"),
            twilio_account_sid=_env("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN", "").strip(),
            webhook_allow_private=_bool("WEBHOOK_ALLOW_PRIVATE", False),
            session_days=_int("SESSION_DAYS", 14, minimum=1),
            submit_rate_per_minute=_int("SUBMIT_RATE_PER_MINUTE", 30, minimum=0),
            login_attempts_per_15min=_int("LOGIN_ATTEMPTS_PER_15MIN", 10, minimum=1),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
