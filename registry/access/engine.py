"""Policy engine: ``decide(principal, action, resource)``.

Interim version (registry core): ``open``-tier models are readable by anyone; everything
else is denied. The full engine driven by ``policies/*.yaml`` replaces this module.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.access.decision import Decision, Missing, Principal
from registry.models import Model, Version

PUBLIC_ACTIONS = frozenset({"public", "model:list", "model:read"})


class PolicyEngine:
    def __init__(self, policies_path: Path) -> None:
        self.policies_path = policies_path

    @classmethod
    def load(cls, policies_path: Path) -> PolicyEngine:
        return cls(policies_path)

    def tier_names(self) -> set[str]:
        return {"open", "registered", "credentialed", "contributor-review"}

    def default_dua(self, tier: str) -> str | None:
        return None if tier == "open" else "physionet-credentialed-1.5.0"

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Any,
        *,
        db: Session,
        now: dt.datetime,
    ) -> Decision:
        if action in PUBLIC_ACTIONS:
            return Decision(True)
        if action == "version:download":
            model = resource.model if isinstance(resource, Version) else resource
            if isinstance(model, Model) and model.tier == "open":
                return Decision(True)
            return Decision(
                False,
                (Missing("tier", f"{model.repo_id} requires the '{model.tier}' access tier"),),
            )
        return Decision(False, (Missing("authenticated", "log in first", "/login"),))
