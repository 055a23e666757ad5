"""The policy engine through real requests: every denial names what is missing and where
to fix it, and expiries take effect on the next request (injected clock, no waiting)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from registry.access.decision import ANONYMOUS, Principal
from registry.unit_of_work import unit_of_work
from tests.fixtures.repos import publish_folder

FILE = "model_index.json"
BASE = "http://127.0.0.1"  # settings.public_url in tests


def _resolve(api, repo: str, token: str | None = None, method: str = "GET"):
    return api(method, f"/{repo}/resolve/main/{FILE}", token=token)


@pytest.fixture
def cr_model(registry, tiny_model_dir):
    return publish_folder(registry, "demo/cr", tiny_model_dir, tier="contributor-review")


def test_anonymous_and_registered_users_learn_everything_they_lack(api, people, gated_model):
    anonymous = _resolve(api, gated_model.repo_id)
    assert anonymous.status_code == 401
    assert anonymous.headers["X-Error-Code"] == "GatedRepo"
    message = anonymous.headers["X-Error-Message"]
    assert "demo/gated is in the 'credentialed' access tier" in message
    assert "You are not logged in" in message and f"(log in at {BASE}/login)" in message
    assert "credentialed researcher status" in message and "a signed DUA" in message

    token = people.token(people.user("reg@example.org"), "read")
    registered = _resolve(api, gated_model.repo_id, token, method="HEAD")
    assert registered.status_code == 403
    message = registered.headers["X-Error-Message"]
    assert f"Not a credentialed researcher (apply at {BASE}/account/credentials)" in message
    assert (
        "CITI Data or Specimens Only Research training not on file "
        f"(submit it at {BASE}/account/trainings)"
    ) in message
    assert (
        "DUA physionet-credentialed-1.5.0 not signed "
        f"(sign at {BASE}/duas/physionet-credentialed-1.5.0)"
    ) in message

    researcher = people.token(people.researcher("res@example.org"), "read")
    ok = _resolve(api, gated_model.repo_id, researcher)
    assert ok.status_code == 200
    assert ok.headers["X-Repo-Commit"] == gated_model.commit


def test_training_expiry_denies_the_next_download(api, people, registry, gated_model):
    now = registry.now()
    until = now + dt.timedelta(days=10)
    token = people.token(
        people.user(
            "res@example.org",
            credentialed=True,
            training_until=until,
            dua="physionet-credentialed-1.5.0",
        ),
        "read",
        days=60,
    )
    assert _resolve(api, gated_model.repo_id, token).status_code == 200
    registry.clock = lambda: until + dt.timedelta(seconds=1)
    denied = _resolve(api, gated_model.repo_id, token)
    assert denied.status_code == 403
    assert denied.headers["X-Error-Code"] == "GatedRepo"
    assert (
        f"CITI Data or Specimens Only Research training expired on {until:%Y-%m-%d} "
        f"(renew at {BASE}/account/trainings)"
    ) in denied.headers["X-Error-Message"]
    assert denied.json["missing"] == [
        {
            "requirement": "training:citi-dsor",
            "message": f"CITI Data or Specimens Only Research training expired on {until:%Y-%m-%d}",
            "fix_url": "/account/trainings",
        }
    ]


def test_grant_end_denies_the_next_download(api, people, registry, cr_model):
    now = registry.now()
    end = now + dt.timedelta(days=5)
    uid = people.researcher("res@example.org")
    token = people.token(uid, "read", days=60)
    nothing = _resolve(api, cr_model.repo_id, token)
    assert nothing.status_code == 403
    assert (
        "No accepted access request for demo/cr "
        f"(request access at {BASE}/models/demo/cr/request-access)"
    ) in nothing.headers["X-Error-Message"]

    people.grant(uid, cr_model.repo_id, expires_at=end)
    assert _resolve(api, cr_model.repo_id, token).status_code == 200
    registry.clock = lambda: end
    denied = _resolve(api, cr_model.repo_id, token)
    assert denied.status_code == 403
    assert (
        f"Access to demo/cr expired on {end:%Y-%m-%d} "
        f"(request again at {BASE}/models/demo/cr/request-access)"
    ) in denied.headers["X-Error-Message"]


def _decide(registry, principal, action, resource):
    with unit_of_work(registry.sessions) as db:
        return registry.policy.decide(principal, action, resource, db=db, now=registry.now())


def _principal(registry, uid: int) -> Principal:
    from registry.models import User

    db = registry.sessions()
    return Principal(user=db.get(User, uid))


def test_pending_rejected_and_revoked_evidence_is_explained(people, registry, gated_model):
    from registry.models import CredentialApplication, Training
    from registry.repos import services as repos

    uid = people.user("res@example.org", dua="physionet-credentialed-1.5.0")
    now = registry.now()
    with unit_of_work(registry.sessions) as db:
        db.add(
            CredentialApplication(
                user_id=uid,
                full_name="R",
                affiliation="A",
                reference_name="B",
                reference_email="b@example.org",
                research_summary="S",
                status="revoked",
                reason="affiliation ended",
                decided_at=now,
                created_at=now,
            )
        )
        db.add(Training(user_id=uid, kind="citi-dsor", status="pending", created_at=now))
        db.commit()
        model = repos.find_model(db, "demo", "gated")
        decision = registry.policy.decide(
            _principal(registry, uid), "version:download", model, db=db, now=now
        )
    assert not decision.allowed
    messages = [m.message for m in decision.missing]
    assert messages == [
        f"Credentialed status revoked on {now:%Y-%m-%d}: affiliation ended",
        f"CITI Data or Specimens Only Research training submitted on {now:%Y-%m-%d} "
        "is awaiting review",
    ]


def test_rules_that_do_not_depend_on_tiers(people, registry, gated_model):
    from registry.models import Model, User, Version

    publisher = people.user("pub@example.org", institution="demo", role="publisher")
    outsider = people.user("out@example.org", institution="elsewhere", role="institution-admin")
    admin = people.user("root@example.org", admin=True)
    with unit_of_work(registry.sessions) as db:
        model = db.scalar(select(Model).where(Model.name == "gated"))
        draft = Version(model_id=model.id, state="draft")
        db.add(draft)
        db.flush()

        def decide(uid, action, resource):
            principal = Principal(user=db.get(User, uid)) if uid else ANONYMOUS
            return registry.policy.decide(principal, action, resource, db=db, now=registry.now())

        # The owning institution's publishers may download their own models.
        assert decide(publisher, "version:download", model).allowed
        assert not decide(outsider, "version:download", model).allowed
        # Drafts: the owner's staff and registry admins only.
        assert decide(publisher, "version:download", draft).allowed
        assert decide(admin, "version:read-draft", draft).allowed
        assert not decide(outsider, "version:read-draft", draft).allowed
        assert not decide(None, "version:download", draft).allowed
        # Unknown actions are denied, whoever asks.
        unknown = decide(admin, "model:delete-everything", model)
        assert not unknown.allowed and "Unknown action" in unknown.message
        # Resource-bound actions without a resource are denied.
        assert not decide(publisher, "version:upload", None).allowed
        db.get(User, admin).is_active = False
        assert not decide(admin, "audit:read", None).allowed
        db.rollback()


def test_api_denials_carry_the_missing_list_as_json(api, people, gated_model):
    token = people.token(people.user("reg@example.org"), "read")
    denied = api(
        "GET", f"/api/v1/models/demo/gated/versions/{gated_model.commit}/downloads", token=token
    )
    assert denied.status_code == 403
    assert denied.json["code"] == "Forbidden"
    assert denied.json["action"] == "version:downloads"
    assert denied.json["missing"][0]["requirement"] == "institution-role"
    assert "publisher or institution-admin" in denied.json["error"]
