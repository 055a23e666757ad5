"""Per-hook secrets (shown once, stored encrypted) and the HMAC-SHA256 delivery signature.

A receiver verifies ``X-Registry-Signature-256: sha256=<hex>`` as
``hmac.compare_digest(header, "sha256=" + hmac_sha256(secret, raw_body).hexdigest())``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Registry-Signature-256"
_HKDF_INFO = b"roentgen-registry/webhook-secret-encryption/v1"


class SecretUnreadable(ValueError):
    """The stored secret does not decrypt (``REGISTRY_SECRET_KEY`` changed)."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _fernet(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


def seal(secret: str, secret_key: str) -> str:
    """The hook secret encrypted under a key derived from ``REGISTRY_SECRET_KEY``."""
    return _fernet(secret_key).encrypt(secret.encode()).decode("ascii")


def unseal(sealed: str, secret_key: str) -> str:
    try:
        return _fernet(secret_key).decrypt(sealed.encode("ascii")).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the webhook secret cannot be decrypted (was REGISTRY_SECRET_KEY changed?); "
            "delete the hook and create it again"
        ) from None


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Registry-Signature-256`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(header.encode(), signature(secret, body).encode())
