"""Principals (who is asking) and decisions (what the policy engine answered)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.models import ApiToken, User


@dataclasses.dataclass(frozen=True)
class Missing:
    """One unmet requirement, said in plain words, with where to fix it."""

    requirement: str  # e.g. "training:citi-dsor"
    message: str  # e.g. "CITI training expired on 2026-03-02"
    fix_url: str = ""  # web-UI path where the user can fix it, e.g. "/account/trainings"
    verb: str = "fix"  # how the fix reads: "renew at", "sign at" ... ("fix at" by default)

    def sentence(self, base_url: str = "") -> str:
        """The message with its fix, e.g. "... expired on 2026-03-02 (renew at /account/...)"."""
        if not self.fix_url:
            return self.message
        return f"{self.message} ({self.verb} at {base_url.rstrip('/')}{self.fix_url})"

    def to_dict(self) -> dict[str, str]:
        return {"requirement": self.requirement, "message": self.message, "fix_url": self.fix_url}


@dataclasses.dataclass(frozen=True)
class Decision:
    """``allowed`` plus, when denied, every missing requirement and a one-line context."""

    allowed: bool
    missing: tuple[Missing, ...] = ()
    reason: str = ""  # context for the denial, e.g. "hosp/cxr requires the 'credentialed' tier"

    @property
    def message(self) -> str:
        """All missing requirements as one sentence for ``X-Error-Message``."""
        return self.render()

    def render(self, base_url: str = "") -> str:
        """The denial as one sentence; fix URLs are prefixed with ``base_url``."""
        parts = "; ".join(item.sentence(base_url) for item in self.missing)
        if self.reason and parts:
            return f"{self.reason}. Missing: {parts}"
        return self.reason or parts


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: a user (via session or token) or nobody."""

    user: User | None = None
    token: ApiToken | None = None  # None for session logins and anonymous requests

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def scope(self) -> str | None:
        """The token's scope; ``None`` means no scope limit (a web session, or anonymous)."""
        return self.token.scope if self.token is not None else None

    @property
    def label(self) -> str:
        return self.user.email if self.user is not None else "anonymous"


ANONYMOUS = Principal()
