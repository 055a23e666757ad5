"""The registry's Ed25519 signing key: loaded from settings or generated once and stored
encrypted (Fernet, keyed from the secret key via HKDF); rotation keeps old keys listed."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.services import record_event
from registry.config import ConfigError, Settings
from registry.errors import Conflict
from registry.models import SigningKey, User
from registry.publishing.locks import serialize_writes

ALGORITHM = "ed25519"
_HKDF_INFO = b"roentgen-registry/signing-key-encryption/v1"


@dataclasses.dataclass(frozen=True)
class ManifestSigner:
    """The active private key and its id."""

    key_id: str
    private_key: Ed25519PrivateKey

    def sign(self, data: bytes) -> str:
        """A base64 Ed25519 signature over ``data``."""
        return b64(self.private_key.sign(data))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """A key's id: the sha256 of its raw 32-byte public key, hex."""
    return hashlib.sha256(public_key).hexdigest()


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Parse a base64 raw 32-byte Ed25519 public key; ``ValueError`` says what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public_key must be base64 (standard alphabet, with padding)") from None
    if len(raw) != 32:
        raise ValueError(f"public_key must be 32 raw Ed25519 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: str, signature: str, data: bytes) -> bool:
    """Whether ``signature`` (base64) over ``data`` verifies with ``public_key`` (base64 raw)."""
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        decode_public_key(public_key).verify(sig, data)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def generate_seed() -> str:
    """A new base64 seed for ``REGISTRY_SIGNING_KEY``."""
    return b64(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )


def load_signer(db: Session, settings: Settings, now: dt.datetime) -> ManifestSigner:
    """The active key; created (configured or generated) in the caller's transaction if none."""
    configured = _configured_key(settings)
    wanted = key_id(public_raw(configured)) if configured is not None else None
    row = _active(db)
    if row is None or (wanted is not None and row.key_id != wanted):
        serialize_writes(db)
        row = _active(db)  # another process may have won while this one waited
        if row is None or (wanted is not None and row.key_id != wanted):
            row = _install(db, settings, configured, now)
    if configured is not None:
        return ManifestSigner(row.key_id, configured)
    return ManifestSigner(row.key_id, _decrypt(settings, row))


def rotate(
    db: Session,
    settings: Settings,
    now: dt.datetime,
    *,
    actor: User | None = None,
) -> SigningKey:
    """Retire the active key and generate a new one (old public keys stay listed)."""
    if settings.signing_key:
        raise Conflict(
            "The signing key comes from REGISTRY_SIGNING_KEY: set a new seed there "
            "(registry-server keys generate) and restart; the old key stays listed as retired."
        )
    serialize_writes(db)
    return _install(db, settings, None, now, actor=actor)


def list_keys(db: Session) -> list[SigningKey]:
    """Every registry key, newest first."""
    return list(db.scalars(select(SigningKey).order_by(SigningKey.id.desc())))


def confirmed_keys(db: Session, settings: Settings) -> dict[str, str]:
    """Registry keys whose private part this installation holds: key_id → public key.

    A key counts when it is ``REGISTRY_SIGNING_KEY`` or its stored private part decrypts
    with ``REGISTRY_SECRET_KEY`` (Fernet authenticates it) and matches the key id, so a key
    row written by someone with database access but without the secret does not."""
    confirmed: dict[str, str] = {}
    configured = _configured_key(settings)
    if configured is not None:
        raw = public_raw(configured)
        confirmed[key_id(raw)] = b64(raw)
    for row in list_keys(db):
        if row.key_id in confirmed or not row.private_key_encrypted:
            continue
        try:
            private = _decrypt(settings, row)
        except ConfigError:
            continue
        if key_id(public_raw(private)) == row.key_id:
            confirmed[row.key_id] = b64(public_raw(private))
    return confirmed


def _active(db: Session) -> SigningKey | None:
    return db.scalar(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.id.desc())
        .limit(1)
    )


def _install(
    db: Session,
    settings: Settings,
    configured: Ed25519PrivateKey | None,
    now: dt.datetime,
    *,
    actor: User | None = None,
) -> SigningKey:
    """Retire every active key and make ``configured`` (or a new key) the active one."""
    for old in db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = now
    private = configured or Ed25519PrivateKey.generate()
    raw = public_raw(private)
    kid = key_id(raw)
    row = db.scalar(select(SigningKey).where(SigningKey.key_id == kid))
    if row is None:
        row = SigningKey(key_id=kid, public_key=b64(raw), created_at=now)
        db.add(row)
    row.retired_at = None
    row.private_key_encrypted = None if configured is not None else _encrypt(settings, private)
    record_event(
        db,
        "signing-key:activate",
        actor=actor,
        target=kid,
        details={"source": "configured" if configured is not None else "generated"},
        now=now,
    )
    db.flush()
    return row


def _configured_key(settings: Settings) -> Ed25519PrivateKey | None:
    if not settings.signing_key:
        return None
    try:
        seed = base64.b64decode(settings.signing_key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("REGISTRY_SIGNING_KEY: not base64") from None
    if len(seed) != 32:
        raise ConfigError(
            f"REGISTRY_SIGNING_KEY: must be a 32-byte Ed25519 seed, not {len(seed)} bytes "
            "(make one with: registry-server keys generate)"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _fernet(settings: Settings) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(settings.secret_key.encode())))


def _encrypt(settings: Settings, private: Ed25519PrivateKey) -> str:
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _fernet(settings).encrypt(seed).decode("ascii")


def _decrypt(settings: Settings, row: SigningKey) -> Ed25519PrivateKey:
    if not row.private_key_encrypted:
        raise ConfigError(
            f"signing key {row.key_id[:16]} came from REGISTRY_SIGNING_KEY, which is no longer "
            "set: set it again, or run registry-server keys rotate"
        )
    try:
        seed = _fernet(settings).decrypt(row.private_key_encrypted.encode("ascii"))
    except InvalidToken:
        raise ConfigError(
            "REGISTRY_SECRET_KEY: cannot decrypt the stored signing key (the secret key "
            "changed?); restore the old secret key or run registry-server keys rotate"
        ) from None
    return Ed25519PrivateKey.from_private_bytes(seed)
