"""How a mail leaves: SMTP (``REGISTRY_SMTP_URL``) or ``.eml`` files in the instance folder."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

from registry.config import Settings

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10


class DeliveryError(Exception):
    """A mail or webhook could not be handed over; ``permanent`` when retrying cannot help;
    ``status_code``: the HTTP status a webhook receiver answered."""

    def __init__(
        self, message: str, *, permanent: bool = False, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


class Transport(Protocol):
    """Hands mails over; used as a context manager around one batch."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """One SMTP connection per batch; ``smtps://`` is TLS from the start,
    ``?starttls=true`` upgrades a plain connection, ``user:password@`` logs in."""

    def __init__(self, url: str) -> None:
        parts = urlparse(url)
        self.secure = parts.scheme == "smtps"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.secure else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parse_qs(parts.query).get("starttls", ["false"])[0] in ("1", "true")
        self.connection: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{'smtps' if self.secure else 'smtp'}://{self.host}:{self.port}"

    def __enter__(self) -> SmtpTransport:
        try:
            if self.secure:
                context = ssl.create_default_context()
                self.connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=TIMEOUT_SECONDS, context=context
                )
            else:
                self.connection = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
                if self.starttls:
                    self.connection.starttls(context=ssl.create_default_context())
            if self.user:
                self.connection.login(self.user, self.password or "")
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(f"{self.where} refused the login: {error.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"cannot reach the mail server {self.where}: {error}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None

    def send(self, message: EmailMessage) -> None:
        if self.connection is None:
            raise DeliveryError("not connected: use the transport as a context manager")
        try:
            self.connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryError(
                f"{self.where} refused the recipient: {codes}",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"{self.where} answered {error.smtp_code} {error.smtp_error!r}",
                permanent=error.smtp_code >= 500,
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"lost the mail server {self.where}: {error}") from None


class FileTransport:
    """Writes each mail as ``<folder>/<Message-ID>.eml`` (complete files only)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> FileTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: EmailMessage) -> None:
        name = str(message["Message-ID"]).strip("<>").replace("/", "_") + ".eml"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as out:
                out.write(message.as_bytes())
            os.replace(temp, self.folder / name)
        except OSError as error:
            raise DeliveryError(f"cannot write the mail into the outbox folder: {error}") from None


_announced: set[str] = set()


def announce(settings: Settings) -> None:
    """Say once per process where mail goes when no SMTP server is configured."""
    folder = settings.instance_path / "outbox"
    if not settings.smtp_url and str(folder) not in _announced:
        _announced.add(str(folder))
        log.warning(
            "REGISTRY_SMTP_URL is not set: mail is written to %s as .eml files, not sent", folder
        )


def open_transport(settings: Settings) -> Transport:
    """SMTP when ``REGISTRY_SMTP_URL`` is set, else ``.eml`` files (and the log says so)."""
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url)
    announce(settings)
    return FileTransport(settings.instance_path / "outbox")
