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
    fix_url: str = ""  # path on the registry where the user can fix it

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    missing: tuple[Missing, ...] = ()

    @property
    def message(self) -> str:
        """All missing requirements as one sentence for ``X-Error-Message``."""
        parts = []
        for item in self.missing:
            parts.append(f"{item.message} (fix at {item.fix_url})" if item.fix_url else item.message)
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: a user (via session or token) or nobody."""

    user: User | None = None
    token: ApiToken | None = None  # None for session logins and anonymous requests

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def label(self) -> str:
        return self.user.email if self.user is not None else "anonymous"


ANONYMOUS = Principal()
