"""One transaction per request and per command: services combine, and fail, together."""

from __future__ import annotations

import pytest
from flask import Blueprint, g, jsonify
from sqlalchemy import func, select

from registry.access.seam import authorize, requires
from registry.accounts import institutions, services
from registry.context import current_registry
from registry.errors import ValidationFailed
from registry.models import AuditEvent, Institution, User
from registry.unit_of_work import unit_of_work
from tests.fixtures.principals import PASSWORD


def _count(registry, model) -> int:
    with registry.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


def _register(db, registry, email: str) -> User:
    return services.register_user(
        db, email=email, password=PASSWORD, accept_terms=True, now=registry.now()
    )


def test_a_second_service_failing_rolls_the_first_back_too(registry) -> None:
    """register_user and set_membership in one command: the failed membership takes the
    new account with it (before, every service committed on its own)."""
    admin_id = None
    with unit_of_work(registry.sessions) as db:
        admin = _register(db, registry, "root@example.org")
        admin_id = admin.id
        institutions.create_institution(db, slug="usz", name="USZ", actor=admin, now=registry.now())
    events_before = _count(registry, AuditEvent)

    with pytest.raises(ValidationFailed), unit_of_work(registry.sessions) as db:
        actor = db.get(User, admin_id)
        user = _register(db, registry, "newcomer@example.org")
        usz = db.scalar(select(Institution).where(Institution.slug == "usz"))
        institutions.set_membership(db, usz, user, role="owner", actor=actor, now=registry.now())

    with registry.sessions() as db:
        assert services.find_user_by_email(db, "newcomer@example.org") is None
    assert _count(registry, AuditEvent) == events_before  # no stray account:register event


two_services = Blueprint("two_services", __name__)


@two_services.post("/test/register-and-join")
@requires("account:register")
def register_and_join():  # type: ignore[no-untyped-def]
    registry = current_registry()
    user = _register(g.db, registry, "joiner@example.org")
    usz = g.db.scalar(select(Institution).where(Institution.slug == "usz"))
    institutions.set_membership(g.db, usz, user, role="owner", actor=user, now=registry.now())
    return jsonify({"never": "reached"})


@two_services.post("/test/register-but-forget-to-authorize")
@requires("model:create", deferred=True)
def forgetful():  # type: ignore[no-untyped-def]
    _register(g.db, current_registry(), "forgotten@example.org")
    return jsonify({"ok": True})


@two_services.post("/test/register-then-authorize")
@requires("model:create", deferred=True)
def register_then_authorize():  # type: ignore[no-untyped-def]
    _register(g.db, current_registry(), "late@example.org")
    authorize(None)
    return jsonify({"ok": True})


@pytest.fixture
def wired(app, registry):
    app.register_blueprint(two_services)
    with unit_of_work(registry.sessions) as db:
        db.add(Institution(slug="usz", name="USZ", created_at=registry.now()))
    return app.test_client()


def _exists(registry, email: str) -> bool:
    with registry.sessions() as db:
        return services.find_user_by_email(db, email) is not None


def test_a_request_whose_second_service_fails_leaves_nothing(wired, registry) -> None:
    response = wired.post("/test/register-and-join")
    assert response.status_code == 422
    assert "role" in response.json["error"].lower() or response.json.get("problems")
    assert not _exists(registry, "joiner@example.org")


def test_a_view_that_forgets_to_authorize_commits_nothing(wired, registry) -> None:
    response = wired.post("/test/register-but-forget-to-authorize")
    assert response.status_code == 500
    assert not _exists(registry, "forgotten@example.org")


def test_a_refused_request_rolls_back_what_the_view_wrote_before_the_refusal(
    wired, registry
) -> None:
    response = wired.post("/test/register-then-authorize")  # anonymous: model:create refused
    assert response.status_code == 401
    assert not _exists(registry, "late@example.org")


def test_a_failed_login_is_kept_in_the_audit_log_although_the_request_fails(
    client, registry
) -> None:
    response = client.post("/api/v1/login", json={"email": "who@example.org", "password": "x"})
    assert response.status_code == 401
    with registry.sessions() as db:
        tags = db.scalars(select(AuditEvent.tag)).all()
    assert "account:login-failed" in tags
