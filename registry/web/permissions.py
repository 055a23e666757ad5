"""Asking the policy engine from pages: what the viewer may do, without raising."""

from __future__ import annotations

from typing import Any

from flask import g

from registry.access.decision import Decision
from registry.context import current_registry


def decision(action: str, resource: Any = None) -> Decision:
    """The engine's answer for the current viewer (used to explain, not to enforce)."""
    registry = current_registry()
    return registry.policy.decide(g.principal, action, resource, db=g.db, now=registry.now())


def can(action: str, resource: Any = None) -> bool:
    """Whether to show a link or button; the view behind it still authorizes."""
    return decision(action, resource).allowed


def safe_fix_url(url: str) -> str:
    """A fix link only if it stays on this site (a path), else nothing."""
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return ""
