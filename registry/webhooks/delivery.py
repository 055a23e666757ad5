"""Posting one signed delivery to a hook, connected to the address that was just checked."""

from __future__ import annotations

import http.client
import socket
import ssl

from registry.config import Settings
from registry.mail.transport import DeliveryError
from registry.models import OutboxMessage, Webhook
from registry.webhooks.signing import SIGNATURE_HEADER, SecretUnreadable, signature, unseal
from registry.webhooks.targets import Target, TargetRefused, resolve

TIMEOUT_SECONDS = 5
USER_AGENT = "RoentGen-Registry-Webhooks/1"


class _PinnedHTTP(http.client.HTTPConnection):
    """Sends ``Host: <name>`` but connects to the checked address (no second DNS lookup)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As ``_PinnedHTTP``, with TLS verified against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def post_delivery(hook: Webhook, message: OutboxMessage, settings: Settings) -> int:
    """POST the message's payload to the hook; the receiver's status, or ``DeliveryError``."""
    try:
        target = resolve(
            hook.url, allow_private=hook.allow_private or settings.webhook_allow_private
        )
        secret = unseal(hook.secret_encrypted, settings.secret_key)
    except TargetRefused as refused:
        raise DeliveryError(f"{hook.url} {refused}", permanent=not refused.temporary) from None
    except SecretUnreadable as error:
        raise DeliveryError(str(error), permanent=True) from None
    body = message.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Registry-Event": message.topic,
        "X-Registry-Delivery": str(message.id),
        SIGNATURE_HEADER: signature(secret, body),
    }
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, TIMEOUT_SECONDS)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(4096)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryError(f"cannot deliver to {target.host}:{target.port}: {error}") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return status
    # Redirects are not followed: a hook must not be bounced to an internal address.
    raise DeliveryError(f"the receiver answered HTTP {status}", status_code=status)
