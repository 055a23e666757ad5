"""The action table: for each ``resource:action``, the token scope it needs and who may.

This is the one place roles are checked. docs/architecture.md lists the same table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from registry.access import fixes
from registry.access.decision import Decision, Missing, Principal
from registry.access.requirements import RequirementChecker, describe
from registry.models import (
    AccessRequest,
    ApiToken,
    AuditEvent,
    Institution,
    Model,
    Training,
    User,
    Version,
)

if TYPE_CHECKING:
    from registry.access.policy import PolicySet

SCOPE_RANK = {"read": 0, "write": 1, "admin": 2}
STAFF_ROLES = ("publisher", "institution-admin")
ADMIN_ROLES = ("institution-admin",)
ALLOW = Decision(True)


@dataclasses.dataclass(frozen=True)
class Context:
    """What a rule may look at: who asks, the policies, the database and the time."""

    principal: Principal
    policies: PolicySet
    db: Session
    now: dt.datetime

    @property
    def user(self) -> User | None:
        return self.principal.user


Check = Callable[[Context, Any], Decision]


@dataclasses.dataclass(frozen=True)
class Rule:
    scope: str  # the least token scope that may perform the action
    check: Check


def _deny(requirement: str, message: str, fix_url: str = "", verb: str = "fix") -> Decision:
    return Decision(False, (Missing(requirement, message, fix_url, verb),))


def _login_required() -> Decision:
    return _deny("authenticated", "You are not logged in", fixes.LOGIN, "log in")


def anyone(ctx: Context, resource: Any) -> Decision:
    return ALLOW


def authenticated(ctx: Context, resource: Any) -> Decision:
    return ALLOW if ctx.user is not None else _login_required()


def registry_admin(ctx: Context, resource: Any) -> Decision:
    if ctx.user is None:
        return _login_required()
    if ctx.user.is_registry_admin:
        return ALLOW
    return _deny("registry-admin", "Only registry administrators may do this")


def institution_of(resource: Any) -> int | None:
    """The id of the institution that owns ``resource`` (model, version, request, ...)."""
    if isinstance(resource, Institution):
        return resource.id
    if isinstance(resource, Model):
        return resource.institution_id
    if isinstance(resource, (Version, AccessRequest)):
        return resource.model.institution_id
    owner = getattr(resource, "institution_id", None)
    if isinstance(owner, int):
        return owner
    model = getattr(resource, "model", None)
    return model.institution_id if isinstance(model, Model) else None


def has_role(user: User | None, institution_id: int | None, roles: tuple[str, ...]) -> bool:
    """Whether ``user`` holds one of ``roles`` in the institution (any, if ``None``)."""
    membership = user.membership if user is not None else None
    if membership is None or membership.role not in roles:
        return False
    return institution_id is None or membership.institution_id == institution_id


def _institution_role(roles: tuple[str, ...], *, admins: bool, none_means_own: bool) -> Check:
    names = " or ".join(roles)

    def check(ctx: Context, resource: Any) -> Decision:
        if ctx.user is None:
            return _login_required()
        if admins and ctx.user.is_registry_admin:
            return ALLOW
        if resource is None and not none_means_own:
            return _deny("resource", "This action needs a resource (deny by default)")
        owner = institution_of(resource) if resource is not None else None
        if resource is not None and owner is None:
            return _deny("resource", "The resource has no owning institution (deny by default)")
        if has_role(ctx.user, owner, roles):
            return ALLOW
        whose = "the owning institution" if resource is not None else "an institution"
        return _deny("institution-role", f"Only a {names} of {whose} may do this")

    return check


def _owner_or_admin(kind: type, what: str) -> Check:
    def check(ctx: Context, resource: Any) -> Decision:
        if ctx.user is None:
            return _login_required()
        if ctx.user.is_registry_admin:
            return ALLOW
        if isinstance(resource, kind) and resource.user_id == ctx.user.id:
            return ALLOW
        if resource is None and kind is ApiToken:
            return ALLOW  # the service only touches the caller's own tokens
        return _deny("owner", f"Only the owner of this {what} or a registry admin may do this")

    return check


def download(ctx: Context, resource: Any) -> Decision:
    """``version:download``: the model's tier decides; the owning institution's staff may."""
    version = resource if isinstance(resource, Version) else None
    model = version.model if version is not None else resource
    if not isinstance(model, Model):
        return _deny("resource", "version:download needs a model or version (deny by default)")
    if version is not None and version.state not in ("published", "withdrawn"):
        return staff_or_admin(ctx, version)
    if has_role(ctx.user, model.institution_id, STAFF_ROLES):
        return ALLOW
    tier = ctx.policies.tiers.get(model.tier)
    if tier is None:
        return _deny("tier", f"{model.repo_id} has unknown access tier {model.tier!r}")
    reason = f"{model.repo_id} is in the '{tier.name}' access tier"
    if ctx.user is None:
        if not tier.requires:
            return ALLOW
        needs = ", ".join(describe(ctx.policies, r, model) for r in tier.requires)
        message = f"You are not logged in (this tier needs {needs})"
        return Decision(False, (Missing("authenticated", message, fixes.LOGIN, "log in"),), reason)
    missing = RequirementChecker(ctx.policies, ctx.db, ctx.user, ctx.now).unmet(tier, model)
    return Decision(not missing, tuple(missing), reason if missing else "")


def _any_admin(ctx: Context, doing: str) -> Decision:
    """Registry admins, or institution admins of any institution."""
    if ctx.user is None:
        return _login_required()
    if ctx.user.is_registry_admin or has_role(ctx.user, None, ADMIN_ROLES):
        return ALLOW
    return _deny("institution-role", f"Only institution admins and registry admins {doing}")


def access_request_list(ctx: Context, resource: Any) -> Decision:
    """Reviewers: registry admins, or institution admins (of the model's institution)."""
    if resource is None:
        return _any_admin(ctx, "review requests")
    return decide_requests(ctx, resource)


def webhook_manage(ctx: Context, resource: Any) -> Decision:
    """No resource: registry admins and institution admins (who then name their institution,
    or need ``admin:manage`` for a registry-wide hook); a hook or institution: its admins."""
    if resource is None:
        return _any_admin(ctx, "manage webhooks")
    return manage_institution(ctx, resource)


def access_request_read(ctx: Context, resource: Any) -> Decision:
    if (
        ctx.user is not None
        and isinstance(resource, AccessRequest)
        and resource.user_id == ctx.user.id
    ):
        return ALLOW
    return decide_requests(ctx, resource)


def audit_receipt(ctx: Context, resource: Any) -> Decision:
    """An event's inclusion proof: its actor, staff of the model's institution, admins."""
    if ctx.user is None:
        return _login_required()
    if ctx.user.is_registry_admin:
        return ALLOW
    if isinstance(resource, AuditEvent):
        if resource.actor_id == ctx.user.id:
            return ALLOW
        model = ctx.db.get(Model, resource.model_id) if resource.model_id is not None else None
        if model is not None and has_role(ctx.user, model.institution_id, STAFF_ROLES):
            return ALLOW
    return _deny(
        "receipt-reader",
        "Only the event's actor, a publisher or admin of the institution whose model it "
        "concerns, or a registry admin may fetch its receipt",
    )


staff_or_admin = _institution_role(STAFF_ROLES, admins=True, none_means_own=False)
decide_requests = _institution_role(ADMIN_ROLES, admins=True, none_means_own=False)
manage_institution = _institution_role(ADMIN_ROLES, admins=True, none_means_own=False)
create_model = _institution_role(STAFF_ROLES, admins=False, none_means_own=True)
upload = _institution_role(STAFF_ROLES, admins=False, none_means_own=False)


def draft_reader(ctx: Context, resource: Any) -> Decision:
    """Unpublished versions: their uploader, the institution's staff, registry admins.

    A plain ``member`` of the institution sees only drafts they uploaded themselves."""
    mine = isinstance(resource, Version) and ctx.user is not None
    if mine and resource.created_by_id == ctx.user.id:
        return ALLOW
    return staff_or_admin(ctx, resource)


ACTIONS: dict[str, Rule] = {
    "public": Rule("read", anyone),
    "model:list": Rule("read", anyone),
    "model:read": Rule("read", anyone),
    "version:download": Rule("read", download),
    "account:register": Rule("read", anyone),
    "account:login": Rule("read", anyone),
    "account:read": Rule("read", authenticated),
    "account:write": Rule("write", authenticated),
    "token:create": Rule("admin", authenticated),
    "token:revoke": Rule("admin", _owner_or_admin(ApiToken, "token")),
    "credential:apply": Rule("write", authenticated),
    "training:submit": Rule("write", authenticated),
    "dua:sign": Rule("write", authenticated),
    "credential:review": Rule("admin", registry_admin),
    "training:review": Rule("admin", registry_admin),
    "training:read": Rule("read", _owner_or_admin(Training, "training")),
    "access-request:create": Rule("write", authenticated),
    "access-request:list": Rule("read", access_request_list),
    "access-request:read": Rule("read", access_request_read),
    "access-request:decide": Rule("admin", decide_requests),
    "model:create": Rule("write", create_model),
    "version:upload": Rule("write", upload),
    "version:read-draft": Rule("read", draft_reader),
    "version:review": Rule("admin", registry_admin),
    "version:withdraw": Rule("write", staff_or_admin),
    "version:downloads": Rule("read", staff_or_admin),
    "institution:manage": Rule("admin", manage_institution),
    "institution:key": Rule("admin", manage_institution),
    "admin:manage": Rule("admin", registry_admin),
    "webhook:manage": Rule("admin", webhook_manage),
    "audit:read": Rule("read", registry_admin),
    "audit:receipt": Rule("read", audit_receipt),
}
