"""Policy engine: ``decide(principal, action, resource)`` from the action table and the
tiers in ``policies/*.yaml``. Decisions read the database every time; nothing is cached
across requests, so an expiry or a revocation takes effect at once on every process."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.access import fixes
from registry.access.decision import Decision, Missing, Principal
from registry.access.policy import DuaSpec, PolicySet, TierSpec, TrainingSpec, load_policies
from registry.access.requirements import RequirementChecker, model_dua
from registry.access.rules import ACTIONS, SCOPE_RANK, Context
from registry.models import Model

log = logging.getLogger(__name__)


class PolicyEngine:
    """Answers whether a principal may perform an action, and what is missing if not."""

    def __init__(self, policies: PolicySet, policies_path: Path) -> None:
        self.policies = policies
        self.policies_path = policies_path

    @classmethod
    def load(cls, policies_path: Path) -> PolicyEngine:
        """Read and check ``policies_path/*.yaml``; raises ``PolicyError`` if malformed."""
        return cls(load_policies(Path(policies_path)), Path(policies_path))

    # Policy data ---------------------------------------------------------------------------

    def tier_names(self) -> set[str]:
        return set(self.policies.tiers)

    def tier(self, name: str) -> TierSpec | None:
        return self.policies.tiers.get(name)

    def default_dua(self, tier: str) -> str | None:
        """The DUA a new model of ``tier`` requires unless it names another."""
        spec = self.policies.tiers.get(tier)
        return spec.dua if spec is not None else None

    def review_required(self, tier: str, institution: str | None = None) -> bool:
        """Whether versions of ``tier`` (from ``institution``, a slug, if given) need a
        registry admin's review; an unknown tier: yes."""
        spec = self.policies.tiers.get(tier)
        return True if spec is None else spec.reviewed_for(institution)

    def training(self, kind: str) -> TrainingSpec | None:
        return self.policies.trainings.get(kind)

    def trainings(self) -> list[TrainingSpec]:
        return list(self.policies.trainings.values())

    def dua(self, dua_id: str) -> DuaSpec | None:
        return self.policies.duas.get(dua_id)

    def duas(self) -> list[DuaSpec]:
        return list(self.policies.duas.values())

    def model_dua(self, model: Model) -> str | None:
        return model_dua(self.policies, model)

    @staticmethod
    def actions() -> set[str]:
        return set(ACTIONS)

    @staticmethod
    def action_scope(action: str) -> str | None:
        rule = ACTIONS.get(action)
        return rule.scope if rule is not None else None

    # Decisions -----------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Any,
        *,
        db: Session,
        now: dt.datetime,
    ) -> Decision:
        """Allowed, or denied with every missing requirement and where to fix it."""
        rule = ACTIONS.get(action)
        if rule is None:
            log.error("unknown action %r denied", action)
            return Decision(False, (Missing("action", f"Unknown action {action!r} (denied)"),))
        user = principal.user
        if user is not None and not user.is_active:
            return Decision(False, (Missing("active", "This account is disabled"),))
        scope = principal.scope
        if scope is not None and SCOPE_RANK.get(scope, -1) < SCOPE_RANK[rule.scope]:
            message = (
                f"This API token has scope '{scope}', but {action} needs a '{rule.scope}' token"
            )
            return Decision(
                False, (Missing(f"scope:{rule.scope}", message, fixes.TOKENS, "create one"),)
            )
        context = Context(principal=principal, policies=self.policies, db=db, now=now)
        return rule.check(context, resource)

    def unmet(
        self, principal: Principal, model: Model, *, db: Session, now: dt.datetime
    ) -> list[Missing]:
        """What ``principal`` still lacks to download ``model`` (empty when nothing)."""
        return list(self.decide(principal, "version:download", model, db=db, now=now).missing)

    def tier_status(
        self, principal: Principal, *, db: Session, now: dt.datetime
    ) -> dict[str, list[Missing]]:
        """For each tier, what the user lacks (model-independent requirements only)."""
        status: dict[str, list[Missing]] = {}
        if principal.user is None:
            return status
        checker = RequirementChecker(self.policies, db, principal.user, now)
        for name, tier in self.policies.tiers.items():
            probe = Model(namespace="-", name="-", tier=name, dua=tier.dua, id=-1)
            status[name] = [
                m
                for m in (checker.check(r, probe) for r in tier.requires)
                if m is not None and m.requirement != "access-request-accepted"
            ]
        return status
