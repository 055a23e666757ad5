"""One typed settings object, read from ``REGISTRY_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Registry settings. Every field maps to ``REGISTRY_<FIELD NAME IN UPPER CASE>``."""

    instance_path: Path = Path("instance")
    database_url: str = ""
    storage_url: str = ""
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:8000"
    policies_path: Path = Path(__file__).resolve().parent.parent / "policies"
    signing_key: str = ""
    ratelimit_storage_url: str = "memory://"
    ratelimit_enabled: bool = True
    # With the rate-limit store (Redis) down, limited routes answer 503 (fail closed);
    # true lets them through unlimited instead (fail open), logging each miss.
    ratelimit_fail_open: bool = False
    token_default_days: int = 90
    token_max_days: int = 365
    max_file_size: int = 50 * 1024**3
    institution_quota: int = 500 * 1024**3
    upload_session_hours: int = 24
    gc_grace_hours: int = 24
    presign_seconds: int = 300
    s3_redirect: bool = True
    tree_page_size: int = 1000
    # Hugging Face LFS uploads: files this large go up in parts of hf_lfs_part_size bytes.
    hf_lfs_multipart_threshold: int = 64 * 1024**2
    hf_lfs_part_size: int = 16 * 1024**2
    session_cookie_secure: bool = True
    # Number of reverse proxies in front of the registry whose X-Forwarded-* headers are
    # trusted (for client IPs in the audit log and https URLs); 0 when exposed directly.
    trusted_proxies: int = 0
    # Outgoing mail: smtp://host:port or smtps://user:pass@host:465 (?starttls=true for
    # STARTTLS); empty writes .eml files to <instance>/outbox/ instead (registry.mail).
    smtp_url: str = ""
    mail_from: str = "RoentGen Registry <registry@localhost>"
    # The registry's name in every mail and webhook payload.
    site_name: str = "RoentGen Registry"
    # Let every webhook reach loopback and private addresses (otherwise only hooks a
    # registry admin allowed may).
    webhook_allow_private: bool = False
    # Start on a database older than the blob store's high-water mark (a restore of an older
    # dump): the version ids and tags issued after the dump stay retired (registry.identities).
    accept_restore: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment, then apply ``overrides`` (used by tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            var = f"REGISTRY_{field.name.upper()}"
            if field.name in overrides:
                raw: Any = overrides[field.name]
            elif var in environ:
                raw = environ[var]
            else:
                continue
            values[field.name] = _coerce(var, field.type, raw)
        settings = cls(**values)
        return settings._with_defaults()

    def _with_defaults(self) -> Settings:
        instance = self.instance_path.resolve()
        changes: dict[str, Any] = {"instance_path": instance}
        if not self.database_url:
            changes["database_url"] = f"sqlite:///{instance / 'registry.db'}"
        if not self.storage_url:
            changes["storage_url"] = (instance / "blobs").as_uri()
        if not self.secret_key:
            changes["secret_key"] = _instance_secret(instance)
        settings = dataclasses.replace(self, **changes)
        settings._validate()
        return settings

    def _validate(self) -> None:
        scheme = urlparse(self.database_url).scheme.split("+")[0]
        if scheme not in {"sqlite", "postgresql"}:
            raise ConfigError(
                f"REGISTRY_DATABASE_URL: unsupported database {self.database_url!r}; "
                "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        storage = urlparse(self.storage_url)
        if storage.scheme not in {"file", "s3"} or (storage.scheme == "s3" and not storage.netloc):
            raise ConfigError(
                f"REGISTRY_STORAGE_URL: unsupported storage {self.storage_url!r}; "
                "use file:///PATH or s3://BUCKET/PREFIX?endpoint=URL"
            )
        if len(self.secret_key) < 16:
            raise ConfigError("REGISTRY_SECRET_KEY: must be at least 16 characters long")
        if self.token_default_days > self.token_max_days:
            raise ConfigError(
                "REGISTRY_TOKEN_DEFAULT_DAYS: must not exceed REGISTRY_TOKEN_MAX_DAYS"
            )
        if self.smtp_url and urlparse(self.smtp_url).scheme not in {"smtp", "smtps"}:
            raise ConfigError(
                # Never echo the URL: it may carry the SMTP password.
                f"REGISTRY_SMTP_URL: unsupported scheme {urlparse(self.smtp_url).scheme!r}; use "
                "smtp://HOST:PORT or smtps://USER:PASSWORD@HOST:465"
            )
        if "@" not in self.mail_from:
            raise ConfigError(
                f"REGISTRY_MAIL_FROM: {self.mail_from!r} has no address; use "
                "'Registry <registry@example.org>'"
            )
        if not self.policies_path.is_dir():
            raise ConfigError(f"REGISTRY_POLICIES_PATH: {self.policies_path} is not a folder")


def _coerce(var: str, annotation: Any, raw: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            value = int(raw)
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if kind == "Path":
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{var}: invalid value {raw!r} ({exc})") from None


def _instance_secret(instance: Path) -> str:
    """A random secret kept in the instance folder, so a laptop needs no configuration."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret
