"""Password hashing and API token generation."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

TOKEN_PREFIX = "fw_"  # noqa: S105 (a visible marker, not a secret)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str, str]:
    """Return (plaintext, sha256 hash, visible prefix). Only the hash is stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_token(plaintext), plaintext[: len(TOKEN_PREFIX) + 8]


def hash_token(plaintext: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; a slow one would tax every request.
    return hashlib.sha256(plaintext.encode()).hexdigest()
