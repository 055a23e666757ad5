"""Delivering the outbox: claim due messages, send them, record each outcome at once.

A message is claimed by a conditional update (``queued`` → ``sending`` with a lease), so
several processes never take the same one; its outcome is committed right after it is
handed over, so a mail server that is down and comes back gets every mail exactly once
(only a crash between the hand-over and that commit can repeat one, after the lease; the
``Message-ID`` stays the same, so a receiving server can drop the repeat). Failures are
retried after ``BACKOFF``; a permanent refusal, or the last retry, marks it ``failed``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import urlparse

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from registry.accounts.links import fill_links
from registry.config import Settings
from registry.context import Registry
from registry.mail.transport import DeliveryError, Transport, open_transport
from registry.models import OutboxMessage, Webhook
from registry.unit_of_work import unit_of_work
from registry.webhooks.delivery import post_delivery

log = logging.getLogger(__name__)

# Wait after the 1st, 2nd, ... failed attempt; after the last one the message is failed.
BACKOFF = tuple(dt.timedelta(minutes=m) for m in (0.5, 2, 10, 30, 60, 120, 240, 480))
MAX_ATTEMPTS = len(BACKOFF) + 1
SMTP_POLICY = SMTP.clone(max_line_length=998)
LEASE = dt.timedelta(minutes=5)
BATCH = 20
# The background thread must return promptly: stop starting deliveries (mails and hooks)
# after this long; the rest is given back untried for the next run.
TIME_BUDGET_SECONDS = 8.0


@dataclasses.dataclass
class Report:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed" + (
            f", {self.released} left for the next run" if self.released else ""
        )

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.released

    def add(self, other: Report) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after ``attempts`` failed attempts."""
    return BACKOFF[min(attempts, len(BACKOFF)) - 1]


def deliver_due(
    registry: Registry,
    *,
    limit: int = BATCH,
    transport: Transport | None = None,
    budget: float = TIME_BUDGET_SECONDS,
) -> Report:
    """Deliver up to ``limit`` due messages (mail over ``transport``, webhooks over HTTP)."""
    report = Report()
    claimed = _claim(registry.sessions, registry.now(), limit)
    if not claimed:
        return report
    started = time.monotonic()
    mails = [m for m in claimed if m.kind == "mail"]
    hooks = [m for m in claimed if m.kind == "webhook"]
    if mails:
        _send_mails(
            registry,
            mails,
            transport or open_transport(registry.settings),
            report,
            deadline=started + budget,
        )
    for message in hooks:
        if time.monotonic() - started > budget:
            _release(registry.sessions, message.id)
            report.released += 1
            continue
        try:
            status = _post(registry, message)
        except DeliveryError as error:
            _finish(registry, message.id, report, error=error, status_code=error.status_code)
        else:
            _finish(registry, message.id, report, status_code=status)
    return report


def deliver_backlog(
    registry: Registry,
    stopping: threading.Event | None = None,
    *,
    budget: float = TIME_BUDGET_SECONDS,
) -> Report:
    """The background task: batch after batch while a batch comes back full and the time
    budget lasts (a withdrawal mailed to a thousand downloaders does not wait 3 s per 20);
    a server shutting down (``stopping`` set) ends it after the current batch."""
    return _batches(registry, deadline=time.monotonic() + budget, stopping=stopping)


def drain(registry: Registry, *, transport: Transport | None = None) -> Report:
    """Deliver batch after batch until nothing due is left (``mail run``); a message that
    fails is retried later, so each batch makes progress and the loop ends."""
    return _batches(registry, transport=transport)


def _batches(
    registry: Registry,
    *,
    deadline: float | None = None,
    stopping: threading.Event | None = None,
    transport: Transport | None = None,
) -> Report:
    total = Report()
    while True:
        budget = TIME_BUDGET_SECONDS if deadline is None else deadline - time.monotonic()
        report = deliver_due(registry, transport=transport, budget=max(0.0, budget))
        total.add(report)
        total.released = report.released  # a later batch retries what an earlier one gave back
        out_of_time = deadline is not None and time.monotonic() >= deadline
        if _done(report) or out_of_time or (stopping is not None and stopping.is_set()):
            return total


def _done(report: Report) -> bool:
    """Stop after a short batch (nothing more is due), or one that sent nothing (the mail
    server is down: the rest waits for its retry time instead of each trying to connect)."""
    return report.handled < BATCH or report.sent == 0


def _send_mails(
    registry: Registry,
    mails: list[OutboxMessage],
    transport: Transport,
    report: Report,
    *,
    deadline: float,
) -> None:
    try:
        with transport:
            for index, message in enumerate(mails):
                if time.monotonic() > deadline:  # a slow server: the rest waits untried
                    for untried in mails[index:]:
                        _release(registry.sessions, untried.id)
                        report.released += 1
                    break
                try:
                    transport.send(
                        compose(message, registry.settings, body=_body(registry, message))
                    )
                except DeliveryError as error:
                    _finish(registry, message.id, report, error=error)
                else:
                    _finish(registry, message.id, report)
    except DeliveryError as error:  # the server could not be reached at all
        log.warning("mail delivery: %s", error)
        for message in mails:
            _finish(registry, message.id, report, error=error)  # skips those already done


def _body(registry: Registry, message: OutboxMessage) -> str:
    """The text with its links' tokens filled in (they exist only in the mail that leaves)."""
    with unit_of_work(registry.sessions) as db:
        return fill_links(db, message.body, registry.settings.secret_key)


def compose(message: OutboxMessage, settings: Settings, *, body: str) -> EmailMessage:
    """The mail as it goes out; its Message-ID is the same on every attempt."""
    # Long subjects stay on one line (folding right after "Subject:" shows as a leading space).
    mail = EmailMessage(policy=SMTP_POLICY)
    domain = urlparse(settings.public_url).hostname or "localhost"
    mail["From"] = settings.mail_from
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = f"<outbox-{message.id}.{message.created_at:%Y%m%d%H%M%S}@{domain}>"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(body)
    return mail


def _due(now: dt.datetime) -> object:
    return or_(
        and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
    )


def _claim(sessions: sessionmaker[Session], now: dt.datetime, limit: int) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages for this process (committed before sending)."""
    with unit_of_work(sessions) as db:
        candidates = db.scalars(
            select(OutboxMessage.id)
            .where(_due(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        ).all()
        claimed = []
        for message_id in candidates:
            taken = db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, _due(now))
                .values(
                    status="sending",
                    lease_until=now + LEASE,
                    attempts=OutboxMessage.attempts + 1,
                )
            )
            if taken.rowcount == 1:
                claimed.append(message_id)
        messages = (
            list(db.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(claimed))))
            if claimed
            else []
        )
    return sorted(messages, key=lambda m: m.id)


def _post(registry: Registry, message: OutboxMessage) -> int:
    with unit_of_work(registry.sessions) as db:
        hook = db.get(Webhook, message.webhook_id) if message.webhook_id else None
        if hook is None or hook.deleted_at is not None:
            raise DeliveryError("the webhook was deleted", permanent=True)
        db.expunge(hook)
    return post_delivery(hook, message, registry.settings)


def _finish(
    registry: Registry,
    message_id: int,
    report: Report,
    *,
    error: DeliveryError | None = None,
    status_code: int | None = None,
) -> None:
    """Record one outcome in its own transaction, right after the attempt."""
    now = registry.now()
    with unit_of_work(registry.sessions) as db:
        message = db.get(OutboxMessage, message_id)
        if message is None or message.status != "sending":
            return  # already finished in this batch, or taken over after its lease lapsed
        message.lease_until = None
        message.response_status = status_code
        if error is None:
            message.status, message.sent_at, message.last_error = "sent", now, ""
            report.sent += 1
            return
        message.last_error = str(error)[:1000]
        if error.permanent or message.attempts >= MAX_ATTEMPTS:
            message.status = "failed"
            report.failed += 1
            log.warning("outbox message %s failed for good: %s", message.id, error)
        else:
            message.status = "queued"
            message.next_attempt_at = now + backoff(message.attempts)
            report.retrying += 1


def _release(sessions: sessionmaker[Session], message_id: int) -> None:
    """Give a claimed message back untried (the batch ran out of time)."""
    with unit_of_work(sessions) as db:
        db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending")
            .values(status="queued", lease_until=None, attempts=OutboxMessage.attempts - 1)
        )
