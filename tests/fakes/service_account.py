"""Throwaway Google service-account key files for tests (a fresh RSA key each time)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class ServiceAccount:
    info: dict[str, str]  # the JSON Google hands out, private key included
    public_key_pem: bytes  # what the fake token server verifies assertions with
    path: Path | None = None

    @property
    def email(self) -> str:
        return self.info["client_email"]

    @property
    def key_id(self) -> str:
        return self.info["private_key_id"]


def make_service_account(
    directory: Path | None = None, *, name: str | None = None, project: str = "formwright-tests"
) -> ServiceAccount:
    """A key in the exact shape of a downloaded service-account JSON; written to `directory` if given."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = name or f"sheets-{secrets.token_hex(3)}"
    email = f"{name}@{project}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email.replace('@', '%40')}",
        "universe_domain": "googleapis.com",
    }
    path = None
    if directory is not None:
        path = Path(directory) / f"{name}.json"
        path.write_text(json.dumps(info, indent=2))
        path.chmod(0o600)
    return ServiceAccount(info=info, public_key_pem=public_pem, path=path)
