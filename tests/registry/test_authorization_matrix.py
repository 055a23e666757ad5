"""Every route × every kind of principal × a model of every tier, against a table of
expected outcomes written here (keyed by action; the engine is never asked for them).

A route without an action, an action missing from ``EXPECTED``, or a path parameter
missing from ``PARAMS`` fails the test with a message saying what to add. Zero
unexpected allows; an unexpected denial fails too.

Principals authenticate with Bearer tokens; CSRF checks are switched off in this app
(they are tested with the web UI) so that the policy, not a missing form token, decides.
Write routes get empty bodies: allowed principals may answer 4xx for them, denied ones
must answer 401/403 (or, for web pages, a redirect to /login) and never 2xx.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registry.unit_of_work import unit_of_work
from tests.conftest import DATABASES
from tests.fixtures.principals import DUA, People
from tests.fixtures.repos import publish_folder

TIERS = ("open", "registered", "credentialed", "contributor-review")
FILE = "model_index.json"
OWNER = "hosp"
OTHER = "other"

ANONYMOUS = "anonymous"
REGISTERED = "registered"
UNVERIFIED = "credentialed-but-email-unverified"
EXPIRED_TRAINING = "credentialed-expired-training"
NO_DUA = "credentialed-without-dua"
CREDENTIALED = "fully-credentialed"
CR_ACCEPTED = "contributor-review-accepted"
CR_EXPIRED = "contributor-review-grant-expired"
PUBLISHER_OTHER = "publisher-of-another-institution"
PUBLISHER_OWNER = "publisher-of-owning-institution"
INSTITUTION_ADMIN = "institution-admin"
REGISTRY_ADMIN = "registry-admin"
REVOKED_TOKEN = "revoked-token"
READ_TOKEN = "read-scope-token-of-registry-admin"
MEMBER = "member-of-owning-institution"
ADMIN_OTHER = "institution-admin-of-another-institution"
UNVERIFIED_PLAIN = "registered-email-unverified"

PRINCIPALS = (
    ANONYMOUS,
    REGISTERED,
    UNVERIFIED,
    EXPIRED_TRAINING,
    NO_DUA,
    CREDENTIALED,
    CR_ACCEPTED,
    CR_EXPIRED,
    PUBLISHER_OTHER,
    PUBLISHER_OWNER,
    INSTITUTION_ADMIN,
    REGISTRY_ADMIN,
    REVOKED_TOKEN,
    READ_TOKEN,
    MEMBER,
    ADMIN_OTHER,
    UNVERIFIED_PLAIN,
)
VALID = frozenset(PRINCIPALS) - {REVOKED_TOKEN}
USERS = VALID - {ANONYMOUS}
WRITERS = USERS - {READ_TOKEN}  # every token is admin-scoped except READ_TOKEN's
ADMIN = frozenset({REGISTRY_ADMIN})
ADMIN_READ = frozenset({REGISTRY_ADMIN, READ_TOKEN})
OWNER_STAFF = frozenset({PUBLISHER_OWNER, INSTITUTION_ADMIN})
REVIEWERS = frozenset({INSTITUTION_ADMIN, REGISTRY_ADMIN})

# Who may download a model of each tier (the owning institution's staff always may).
# An account whose address is not verified gets nothing above open, whatever else it holds.
DOWNLOADERS = {
    "open": VALID,
    "registered": USERS - {UNVERIFIED, UNVERIFIED_PLAIN},
    "credentialed": OWNER_STAFF | {CREDENTIALED, CR_ACCEPTED, CR_EXPIRED},
    "contributor-review": OWNER_STAFF | {CR_ACCEPTED},
}

Expected = frozenset[str] | Callable[[str | None], frozenset[str]]
# Routes of these actions that name no resource show an institution admin the rows of
# their own institution, so the admin of another institution is allowed there.
OWN_ROWS = {"access-request:list", "webhook:manage"}


# action -> principals allowed (or a function of the model's tier giving them).
EXPECTED: dict[str, Expected] = {
    "public": VALID,
    "model:list": VALID,
    "model:read": VALID,
    "version:download": lambda tier: DOWNLOADERS[tier or "open"],
    "account:register": VALID,
    "account:login": VALID,
    "account:read": USERS,
    "account:write": WRITERS,
    "token:create": WRITERS,
    # The spare token in the URL belongs to REGISTERED.
    "token:revoke": frozenset({REGISTERED, REGISTRY_ADMIN}),
    "credential:apply": WRITERS,
    "training:submit": WRITERS,
    "dua:sign": WRITERS,
    "credential:review": ADMIN,
    "training:review": ADMIN,
    # The training in the URL belongs to REGISTERED.
    "training:read": frozenset({REGISTERED}) | ADMIN_READ,
    "access-request:create": WRITERS,
    # Without a model in the URL, the service lists only the admin's own institution's.
    "access-request:list": REVIEWERS | {READ_TOKEN},
    # The request in the URL was filed by REGISTERED.
    "access-request:read": REVIEWERS | {READ_TOKEN, REGISTERED},
    "access-request:decide": REVIEWERS,
    # Without an institution in the request, staff of any institution may start a model.
    "model:create": OWNER_STAFF | {PUBLISHER_OTHER, ADMIN_OTHER},
    "version:upload": OWNER_STAFF,
    "version:read-draft": OWNER_STAFF | ADMIN_READ,
    "version:review": ADMIN,
    "version:withdraw": OWNER_STAFF | ADMIN,
    "version:downloads": OWNER_STAFF | ADMIN_READ,
    "institution:manage": REVIEWERS,
    "institution:key": REVIEWERS,
    "admin:manage": ADMIN,
    "audit:read": ADMIN_READ,
    # The event in the URL is REGISTERED's download of a model of the owning institution.
    "audit:receipt": OWNER_STAFF | ADMIN_READ | {REGISTERED},
    # The hook in the URL belongs to OWNER; the service shows institution admins their own.
    "webhook:manage": REVIEWERS,
}

# Bodies for write routes that need one before they can name their resource (others get {}).
BODIES: dict[str, Callable[[Any], dict[str, Any]]] = {
    # A real item, and a rejection without its reason: authorized item by item, then refused.
    "v1.decide_access_requests": lambda w: {"ids": [w.ids["request"]], "decision": "reject"},
    "v1.open_upload": lambda w: {
        "repo": f"{OWNER}/{w.models['open']}",
        "files": [{"path": FILE, "size": 2, "sha256": "0" * 64}],
    },
}

# Form routes that decide items named in the form: a real item, so the refusal is per item.
FORMS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "web.bulk_requests": lambda w: {"ids": [w.ids["request"]], "decision": "reject"},
}

# Flask's own static-file routes serve public assets and carry no action.
STATIC_ENDPOINTS = {"static"}
TIER_PARAMS = {"namespace", "name", "revision", "ref", "rev", "path", "version_id"}
SAFE = {"GET", "HEAD"}


@dataclasses.dataclass
class World:
    app: Any
    registry: Any
    tokens: dict[str, str | None]
    models: dict[str, str]  # tier -> model name
    commits: dict[str, str]
    drafts: dict[str, int]
    ids: dict[str, Any]


PARAMS: dict[str, Callable[[World, str | None], str]] = {
    "namespace": lambda w, tier: OWNER,
    "name": lambda w, tier: w.models[tier or "open"],
    "revision": lambda w, tier: w.commits[tier or "open"],
    "ref": lambda w, tier: w.commits[tier or "open"],
    "rev": lambda w, tier: w.commits[tier or "open"],
    "path": lambda w, tier: FILE,
    "version_id": lambda w, tier: str(w.drafts[tier or "open"]),
    "slug": lambda w, tier: OWNER,
    "user_ref": lambda w, tier: "bystander@example.org",
    "user_id": lambda w, tier: str(w.ids["bystander"]),
    "token_id": lambda w, tier: str(w.ids["token"]),
    "training_id": lambda w, tier: str(w.ids["training"]),
    "application_id": lambda w, tier: str(w.ids["application"]),
    "request_id": lambda w, tier: str(w.ids["request"]),
    "dua_id": lambda w, tier: DUA,
    "key_id": lambda w, tier: "no-such-key",
    "session_id": lambda w, tier: w.ids["session"],
    "event_id": lambda w, tier: str(w.ids["event"]),
    "size": lambda w, tier: "1",
    "hook_id": lambda w, tier: str(w.ids["hook"]),
    "message_id": lambda w, tier: str(w.ids["message"]),
    "token": lambda w, tier: "not-a-mailed-token-0123456789abcdef",
    "ticket": lambda w, tier: "not-a-signed-lfs-ticket",
    "part": lambda w, tier: "1",
    "rest": lambda w, tier: "v1/xorbs/default/0",
}


@pytest.fixture(scope="module", params=DATABASES)
def world(request, tmp_path_factory, tiny_model_dir: Path) -> Iterator[World]:
    """One app and database with a published model per tier and every principal."""
    from registry.app import create_app
    from registry.config import Settings
    from registry.db import Base, make_engine
    from registry.models import AuditHead

    tmp = tmp_path_factory.mktemp("matrix")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(AuditHead.__table__.insert().values(id=1, seq=0, hash="0" * 64))
    engine.dispose()
    settings = Settings.from_env(
        {},
        instance_path=tmp / "instance",
        database_url=url,
        secret_key="matrix-secret-key-0123456789",
        session_cookie_secure=False,
        ratelimit_enabled=False,
        public_url="http://127.0.0.1",
    )
    app = create_app(settings=settings)
    app.config.update(TESTING=True, WTF_CSRF_METHODS=[])
    registry = app.extensions["registry"]
    yield _populate(app, registry, tiny_model_dir)
    registry.engine.dispose()


def _populate(app: Any, registry: Any, folder: Path) -> World:
    from registry.audit.services import record_event
    from registry.models import (
        AccessRequest,
        ApiToken,
        CredentialApplication,
        Model,
        OutboxMessage,
        Training,
        UploadSession,
        User,
        Version,
        Webhook,
    )
    from registry.webhooks.signing import seal

    people = People(registry)
    people.institution(OWNER)
    people.institution(OTHER)
    models, commits = {}, {}
    for tier in TIERS:
        name = f"cxr-{tier}"
        commits[tier] = publish_folder(registry, f"{OWNER}/{name}", folder, tier=tier).commit
        models[tier] = name
    cr_repo = f"{OWNER}/{models['contributor-review']}"
    now = registry.now()
    past, future = now - dt.timedelta(days=1), now + dt.timedelta(days=365)

    uid = {
        REGISTERED: people.user("registered@example.org"),
        EXPIRED_TRAINING: people.user(
            "expired@example.org", credentialed=True, training_until=past, dua=DUA
        ),
        NO_DUA: people.user("nodua@example.org", credentialed=True, training_until=future),
        CREDENTIALED: people.researcher("credentialed@example.org"),
        CR_ACCEPTED: people.researcher("accepted@example.org"),
        CR_EXPIRED: people.researcher("lapsed@example.org"),
        PUBLISHER_OTHER: people.user("pub@other.org", institution=OTHER, role="publisher"),
        PUBLISHER_OWNER: people.user("pub@hosp.org", institution=OWNER, role="publisher"),
        INSTITUTION_ADMIN: people.user(
            "head@hosp.org", institution=OWNER, role="institution-admin"
        ),
        REGISTRY_ADMIN: people.user("root@example.org", admin=True),
        REVOKED_TOKEN: people.researcher("revoked@example.org"),
        # Everything a contributor-review download needs, except a verified address.
        UNVERIFIED: people.researcher("unverified@example.org", email_verified=False),
        MEMBER: people.user("member@hosp.org", institution=OWNER, role="member"),
        ADMIN_OTHER: people.user("head@other.org", institution=OTHER, role="institution-admin"),
        UNVERIFIED_PLAIN: people.user("new@example.org", email_verified=False),
    }
    people.grant(uid[UNVERIFIED], cr_repo)
    people.grant(uid[CR_ACCEPTED], cr_repo)
    people.grant(uid[CR_EXPIRED], cr_repo, expires_at=past)
    people.grant(uid[REVOKED_TOKEN], cr_repo)

    tokens: dict[str, str | None] = {ANONYMOUS: None}
    for name, user_id in uid.items():
        tokens[name] = people.token(user_id, "admin")
    tokens[READ_TOKEN] = people.token(uid[REGISTRY_ADMIN], "read")
    spare = people.token(uid[REGISTERED], "write")

    with unit_of_work(registry.sessions) as db:
        revoked = db.scalar(select(ApiToken).where(ApiToken.user_id == uid[REVOKED_TOKEN]))
        revoked.revoked_at = now
        spare_id = db.scalar(select(ApiToken.id).where(ApiToken.prefix == spare[:12]))
        training = Training(
            user_id=uid[REGISTERED],
            kind="citi-dsor",
            verification_url="https://www.citiprogram.org/verify/?k=x",
            created_at=now,
        )
        application = CredentialApplication(
            user_id=uid[REGISTERED],
            full_name="Reg",
            affiliation="Somewhere",
            reference_name="Ref",
            reference_email="ref@example.org",
            research_summary="Tests",
            created_at=now,
        )
        cr_model = db.scalar(select(Model).where(Model.name == models["contributor-review"]))
        pending = AccessRequest(
            model_id=cr_model.id, user_id=uid[REGISTERED], fields={}, created_at=now
        )
        db.add_all([training, application, pending])
        drafts = {}
        for tier in TIERS:
            model = db.scalar(select(Model).where(Model.name == models[tier]))
            draft = Version(model_id=model.id, state="draft", created_at=now)
            db.add(draft)
            db.flush()
            drafts[tier] = draft.id
        open_model = db.scalar(select(Model).where(Model.name == models["open"]))
        session = UploadSession(
            id=str(uuid.uuid4()),
            model_id=open_model.id,
            version_id=drafts["open"],
            user_id=uid[PUBLISHER_OWNER],
            institution_id=open_model.institution_id,
            state="open",
            created_at=now,
            expires_at=future,
        )
        db.add(session)
        event = record_event(
            db,
            "version:download",
            actor=db.get(User, uid[REGISTERED]),
            target=f"{OWNER}/{models['open']}",
            model_id=open_model.id,
            now=now,
        )
        hook = Webhook(
            institution_id=open_model.institution_id,
            url="https://hooks.example.org/registry",
            events=["version.published"],
            secret_encrypted=seal("whsec_matrix", registry.settings.secret_key),
            secret_prefix="whsec_matr",
            created_at=now,
        )
        failed = OutboxMessage(
            kind="mail",
            topic="test",
            recipient="someone@example.org",
            subject="[Registry] test",
            body="text",
            status="failed",
            attempts=9,
            created_at=now,
            next_attempt_at=now,
        )
        db.add_all([hook, failed])
        db.commit()
        ids = {
            "bystander": people.user("bystander@example.org"),
            "token": spare_id,
            "training": training.id,
            "application": application.id,
            "request": pending.id,
            "session": session.id,
            "event": event.id,
            "hook": hook.id,
            "message": failed.id,
        }
    return World(app, registry, tokens, models, commits, drafts, ids)


def _routes(app: Any) -> list[tuple[Any, str, str | None]]:
    """(rule, method, action) for every route and method; static routes are left out."""
    from registry.access.seam import route_action

    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in STATIC_ENDPOINTS or rule.endpoint.endswith(".static"):
            continue
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            if method == "HEAD" and "GET" in (rule.methods or set()) and "resolve" not in rule.rule:
                continue  # Flask adds HEAD to every GET; resolve's HEAD is a protocol step
            out.append((rule, method, route_action(app, rule.endpoint)))
    order = {"GET": 0, "HEAD": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    return sorted(out, key=lambda r: (order.get(r[1], 1), r[0].rule, r[1]))


def test_every_route_declares_an_action_in_the_table(world: World) -> None:
    problems = []
    for rule, method, action in _routes(world.app):
        if action is None:
            problems.append(
                f"{method} {rule.rule} ({rule.endpoint}) declares no action: decorate the view "
                "with @requires('resource:action') (registry.access.seam)"
            )
        elif action not in EXPECTED:
            problems.append(
                f"{method} {rule.rule} ({rule.endpoint}) uses action {action!r}, which has no row "
                "in EXPECTED in tests/registry/test_authorization_matrix.py: add one (and a rule "
                "in registry/access/rules.py, and a line in docs/architecture.md)"
            )
        for param in rule.arguments:
            if param not in PARAMS:
                problems.append(
                    f"{rule.rule}: add a realistic value for path parameter {param!r} to PARAMS "
                    "in tests/registry/test_authorization_matrix.py"
                )
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_engine_knows_exactly_the_table_actions(world: World) -> None:
    assert world.registry.policy.actions() == set(EXPECTED)


def _expected(action: str, tier: str | None, rule: Any) -> frozenset[str]:
    allowed = EXPECTED[action]
    allowed = allowed(tier) if callable(allowed) else allowed
    if action in OWN_ROWS and not rule.arguments:
        allowed = allowed | {ADMIN_OTHER}
    return allowed


def _url(world: World, rule: Any, tier: str | None) -> str:
    values = {name: PARAMS[name](world, tier) for name in rule.arguments}
    with world.app.test_request_context():
        return world.app.url_map.bind("localhost").build(
            rule.endpoint, values, method=None, force_external=False
        )


class DecisionSpy:
    """Records the engine's decisions during one request (to tell a service's own 401,
    such as a wrong password, from the policy's denial)."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.calls = policy, []
        self.original = policy.decide

        def decide(principal, action, resource, **kwargs):  # type: ignore[no-untyped-def]
            decision = self.original(principal, action, resource, **kwargs)
            self.calls.append((action, decision.allowed))
            return decision

        policy.decide = decide

    def first(self, action: str) -> bool | None:
        return next((allowed for name, allowed in self.calls if name == action), None)

    def close(self) -> None:
        self.policy.decide = self.original


def _observe(response: Any, spy: DecisionSpy, action: str) -> str:
    status = response.status_code
    decided = spy.first(action)
    if status in (401, 403):
        return "allow" if decided is True else "deny"
    if status in (301, 302, 303, 307) and response.location.split("?")[0].endswith("/login"):
        return "deny"
    if status < 400:
        return "allow"
    if decided is None:
        return "undecided"
    return "allow" if decided else "deny"


def test_authorization_matrix(world: World) -> None:
    client = world.app.test_client()
    spy = DecisionSpy(world.registry.policy)
    unexpected_allows, unexpected_denials, undecided = [], [], []
    cells = 0
    try:
        for rule, method, action in _routes(world.app):
            if action not in EXPECTED or any(p not in PARAMS for p in rule.arguments):
                continue  # reported by test_every_route_declares_an_action_in_the_table
            tiers: tuple[str | None, ...] = TIERS if set(rule.arguments) & TIER_PARAMS else (None,)
            for tier in tiers:
                url = _url(world, rule, tier)
                allowed = _expected(action, tier, rule)
                for principal in PRINCIPALS:
                    token = world.tokens[principal]
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    spy.calls.clear()
                    kwargs: dict[str, Any] = {"headers": headers}
                    if method not in SAFE:
                        body = BODIES.get(rule.endpoint)
                        if rule.endpoint in FORMS:
                            kwargs["data"] = FORMS[rule.endpoint](world)
                        else:
                            kwargs["json"] = body(world) if body else {}
                    response = client.open(url, method=method, **kwargs)
                    cells += 1
                    seen = _observe(response, spy, action)
                    cell = (
                        f"{method} {url} [{action}, tier={tier}] as {principal}: "
                        f"{response.status_code}"
                    )
                    # A write that answers below 400 went through, whatever it says.
                    succeeded = seen == "allow" or (
                        method not in SAFE and response.status_code < 400
                    )
                    if principal in allowed and seen == "deny":
                        unexpected_denials.append(f"{cell} {_message(response)}")
                    elif principal not in allowed and succeeded:
                        unexpected_allows.append(cell)
                    elif seen == "undecided" and principal not in allowed:
                        undecided.append(
                            f"{cell}: answered before the policy decided; give the route "
                            "realistic PARAMS or authorize before validating input"
                        )
    finally:
        spy.close()
    report = []
    if unexpected_allows:
        report += ["UNEXPECTED ALLOWS:", *unexpected_allows]
    if unexpected_denials:
        report += ["UNEXPECTED DENIALS:", *unexpected_denials]
    if undecided:
        report += ["UNDECIDED:", *undecided]
    assert not report, f"{len(report)} problem lines in {cells} cells:\n" + "\n".join(report)
    assert cells > 500


def _message(response: Any) -> str:
    return response.headers.get("X-Error-Message", "")[:200]
