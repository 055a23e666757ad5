"""The words of every notification: a subject, a few lines and the link to act on.

No mail carries a secret: links lead to pages that ask the reader to log in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from registry.mail.site import Site


@dataclasses.dataclass(frozen=True)
class Letter:
    subject: str
    text: str


def _day(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "an unknown date"


def _reason(reason: str) -> str:
    return f"\nReason given by the reviewer:\n\n    {reason}\n" if reason else ""


def decision(site: Site, *, what: str, outcome: str, reason: str, path: str) -> Letter:
    """A reviewer decided on the reader's credential application, training or request."""
    return Letter(
        f"Your {what} was {outcome}",
        f"Your {what} on {site.name} was {outcome}.\n{_reason(reason)}\n"
        f"See it, and what to do next, at {site.link(path)}",
    )


def waiting(site: Site, *, what: str, who: str, path: str) -> Letter:
    """Something new waits in a review queue the reader works on."""
    return Letter(
        f"New {what} waiting for review",
        f"{who} submitted a {what} on {site.name}.\n\nReview it at {site.link(path)}",
    )


def digest(site: Site, counts: dict[str, tuple[int, str]]) -> Letter:
    """The reviewer's daily summary: how many items wait in each queue."""
    lines = [f"  {count:>4}  {label}: {site.link(path)}" for label, (count, path) in counts.items()]
    total = sum(count for count, _ in counts.values())
    return Letter(
        f"{total} item{'s' if total != 1 else ''} waiting for your review",
        f"Waiting for review on {site.name} today:\n\n" + "\n".join(lines),
    )


def expiring(site: Site, *, what: str, until: dt.datetime, lapsed: bool, path: str) -> Letter:
    """A training or an access grant ends within 30 days (or ended today)."""
    if lapsed:
        return Letter(
            f"Your {what} expired",
            f"Your {what} on {site.name} expired on {_day(until)}; downloads that need it are "
            f"refused from now on.\n\nRenew it at {site.link(path)}",
        )
    return Letter(
        f"Your {what} expires on {_day(until)}",
        f"Your {what} on {site.name} expires on {_day(until)}. Renew it before then to keep "
        f"your access.\n\nRenew it at {site.link(path)}",
    )


def withdrawn(site: Site, *, repo: str, commit: str, reason: str, path: str) -> Letter:
    """A version the reader downloaded was withdrawn by its publisher or an admin."""
    return Letter(
        f"{repo} version {commit[:12]} was withdrawn",
        f"You downloaded {repo} version {commit} from {site.name}. It was withdrawn:\n\n"
        f"    {reason}\n\nStop using your copy; see the model's other versions at "
        f"{site.link(path)}",
    )


def published(site: Site, *, repo: str, commit: str, path: str) -> Letter:
    """The reader's version passed review and is published."""
    return Letter(
        f"{repo} version {commit[:12]} is published",
        f"Your version {commit} of {repo} is now published on {site.name}.\n\n"
        f"See it at {site.link(path)}",
    )
