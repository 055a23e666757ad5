"""Webhooks: signed deliveries from the outbox to a receiver on loopback, retried with
backoff, logged, and never aimed at internal addresses unless a registry admin allows it."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import socket

import pytest

from registry.mail.worker import BACKOFF, deliver_due
from registry.unit_of_work import unit_of_work
from tests.fixtures.principals import DUA, Api
from tests.fixtures.repos import publish_folder
from tests.fixtures.webhooks import expected_signature

pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def staff(people):
    people.institution("hosp")
    people.institution("other")
    return {
        "root": people.token(people.user("root@registry.example", admin=True)),
        "head": people.token(
            people.user("head@hosp.org", institution="hosp", role="institution-admin")
        ),
        "other": people.token(
            people.user("head@other.org", institution="other", role="institution-admin")
        ),
        "rita": people.token(people.user("rita@uni.example", credentialed=True, dua=DUA)),
    }  # fmt: skip


def _create(api, token: str, url: str, events, **extra):
    return api(
        "POST", "/api/v1/webhooks", token=token, json={"url": url, "events": events, **extra}
    )


def _hook(api, staff, receiver, institution="hosp", events=("access-request.created",)):
    made = _create(
        api, staff["root"], receiver.url, list(events), institution=institution, allow_private=True
    )
    assert made.status_code == 201, made.json
    return made.json


def test_a_signed_delivery_verifies_with_the_secret_and_not_with_another(
    api, registry, staff, receiver, tiny_model_dir
) -> None:
    repo = publish_folder(registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    hook = _hook(api, staff, receiver)
    secret = hook["secret"]
    assert secret.startswith("whsec_") and "shown only once" in hook["note"]
    shown = api("GET", f"/api/v1/webhooks/{hook['id']}", token=staff["head"])
    assert shown.status_code == 200 and "secret" not in shown.json

    made = api(
        "POST", f"/api/v1/models/{repo.repo_id}/access-requests", token=staff["rita"], json={}
    )
    assert made.status_code == 201
    deliver_due(registry)  # the reviewers' mails and the delivery
    [(headers, body)] = receiver.requests
    assert headers["X-Registry-Event"] == "access-request.created"
    assert headers["Content-Type"] == "application/json"
    signature = headers["X-Registry-Signature-256"]
    assert hmac.compare_digest(signature, expected_signature(secret, body))
    assert not hmac.compare_digest(signature, expected_signature("whsec_someone-else", body))
    assert not hmac.compare_digest(signature, expected_signature(secret, body + b" "))
    payload = json.loads(body)
    assert payload["event"] == "access-request.created"
    assert payload["data"]["repo"] == repo.repo_id and payload["data"]["user"] == "rita@uni.example"
    assert payload["registry"] == {"name": "RoentGen Registry", "url": "http://127.0.0.1"}
    assert secret not in body.decode() and "rgr_" not in body.decode()


def test_internal_addresses_are_refused_unless_a_registry_admin_allows_them(
    api, staff, receiver, settings
) -> None:
    for url, kind in (
        (receiver.url, "loopback"),
        ("http://localhost:9/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://192.168.1.20:8080/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
    ):
        refused = _create(api, staff["head"], url, ["version.published"], institution="hosp")
        assert refused.status_code == 422, url
        assert f"a {kind} address" in refused.json["error"], (url, refused.json["error"])
    for url, why in (
        ("ftp://hooks.example.org/x", "must start with https://"),
        ("https://user:pw@hooks.example.org/x", "user name or password"),
        ("", "is required"),
    ):
        refused = _create(api, staff["head"], url, ["version.published"], institution="hosp")
        assert refused.status_code == 422 and why in refused.json["error"], url
    unknown = _create(
        api, staff["head"], "https://example.org/x", ["model.deleted"], institution="hosp"
    )
    assert unknown.status_code == 422 and "unknown event 'model.deleted'" in unknown.json["error"]

    # Only a registry admin may open a hook to internal addresses, or make a registry-wide one.
    asked = _create(
        api,
        staff["head"],
        receiver.url,
        ["version.published"],
        institution="hosp",
        allow_private=True,
    )
    assert asked.status_code == 403
    assert (
        _create(api, staff["head"], "https://example.org/x", ["version.published"]).status_code
        == 403
    )
    assert (
        _create(
            api, staff["other"], receiver.url, ["version.published"], institution="hosp"
        ).status_code
        == 403
    )
    allowed = _create(
        api,
        staff["root"],
        receiver.url,
        ["version.published"],
        institution="hosp",
        allow_private=True,
    )
    assert allowed.status_code == 201 and allowed.json["allow_private"] is True


def test_the_operator_may_allow_internal_hooks_for_everyone(
    database_url, tmp_path, receiver
) -> None:
    from registry.app import create_app
    from tests.conftest import make_settings
    from tests.fixtures.principals import People

    app = create_app(settings=make_settings(database_url, tmp_path, webhook_allow_private=True))
    people = People(app.extensions["registry"])
    head = people.token(people.user("head@hosp.org", institution="hosp", role="institution-admin"))
    made = _create(
        Api(app.test_client()), head, receiver.url, ["version.published"], institution="hosp"
    )
    assert made.status_code == 201
    app.extensions["registry"].engine.dispose()


def test_the_address_is_checked_again_at_delivery(api, registry, staff, receiver) -> None:
    from registry.models import OutboxMessage, Webhook

    hook = _hook(api, staff, receiver, events=("version.published",))
    # Later the admin's exception is gone (or the name now points inside): nothing is sent.
    with unit_of_work(registry.sessions) as db:
        db.get(Webhook, hook["id"]).allow_private = False
    assert (
        api("POST", f"/api/v1/webhooks/{hook['id']}/test", token=staff["head"]).status_code == 202
    )
    report = deliver_due(registry)
    assert report.failed == 1 and receiver.requests == []
    with unit_of_work(registry.sessions) as db:
        [row] = db.query(OutboxMessage).all()
        assert row.status == "failed" and "a loopback address" in row.last_error


def test_send_test_retries_with_backoff_and_the_log_shows_each_attempt(
    api, registry, staff, receiver
) -> None:
    hook = _hook(api, staff, receiver)
    start = registry.now()
    registry.clock = lambda: start
    receiver.status = 500
    assert (
        api("POST", f"/api/v1/webhooks/{hook['id']}/test", token=staff["head"]).status_code == 202
    )
    assert deliver_due(registry).retrying == 1
    log = api("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", token=staff["head"]).json
    assert [(d["event"], d["status"], d["attempts"], d["response_status"]) for d in log] == [
        ("ping", "queued", 1, 500)
    ]
    assert "HTTP 500" in log[0]["last_error"]
    assert log[0]["next_attempt_at"] == (start + BACKOFF[0]).isoformat().replace("+00:00", "Z")

    receiver.status = 302  # a redirect is not followed (it could point inside)
    registry.clock = lambda: start + BACKOFF[0]
    assert deliver_due(registry).retrying == 1
    receiver.status = 200
    registry.clock = lambda: start + BACKOFF[0] + BACKOFF[1]
    assert deliver_due(registry).sent == 1
    assert deliver_due(registry).sent == 0
    assert len(receiver.requests) == 3
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1  # every attempt carries the same signed bytes
    log = api("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", token=staff["head"]).json
    assert [(d["status"], d["attempts"], d["response_status"]) for d in log] == [("sent", 3, 200)]
    assert json.loads(log[0]["payload"])["event"] == "ping"


def test_institution_hooks_get_their_own_events_and_registry_hooks_all(
    api, registry, staff, receiver, tiny_model_dir
) -> None:
    repo = publish_folder(registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    mine = _hook(api, staff, receiver, institution="hosp")
    theirs = _hook(api, staff, receiver, institution="other")
    everything = _hook(api, staff, receiver, institution=None)
    api("POST", f"/api/v1/models/{repo.repo_id}/access-requests", token=staff["rita"], json={})
    deliver_due(registry)
    got = {
        hook["id"]
        for hook in (mine, theirs, everything)
        for headers, body in receiver.requests
        if hmac.compare_digest(
            headers["X-Registry-Signature-256"], expected_signature(hook["secret"], body)
        )
    }
    assert got == {mine["id"], everything["id"]}
    listed = api("GET", "/api/v1/webhooks", token=staff["head"]).json
    assert [h["id"] for h in listed] == [mine["id"]]  # institution admins see their own
    assert len(api("GET", "/api/v1/webhooks", token=staff["root"]).json) == 3
    assert api("GET", f"/api/v1/webhooks/{theirs['id']}", token=staff["head"]).status_code == 403


def test_a_deleted_hook_gets_nothing_and_keeps_its_log(
    api, registry, staff, receiver, tiny_model_dir
) -> None:
    repo = publish_folder(registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    hook = _hook(api, staff, receiver)
    api("POST", f"/api/v1/webhooks/{hook['id']}/test", token=staff["head"])
    deliver_due(registry)
    deleted = api("DELETE", f"/api/v1/webhooks/{hook['id']}", token=staff["head"])
    assert deleted.status_code == 200 and deleted.json["deleted_at"]
    api("POST", f"/api/v1/models/{repo.repo_id}/access-requests", token=staff["rita"], json={})
    deliver_due(registry)
    assert len(receiver.requests) == 1
    log = api("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", token=staff["head"])
    assert [d["event"] for d in log.json] == ["ping"]
    assert (
        api("POST", f"/api/v1/webhooks/{hook['id']}/test", token=staff["head"]).status_code == 409
    )
    assert api("GET", "/api/v1/webhooks", token=staff["head"]).json == []


def test_every_event_reaches_a_hook_subscribed_to_it(
    api, registry, people, staff, receiver, tiny_model_dir
) -> None:
    from registry.notifications.scheduled import run_scheduled
    from registry.webhooks.events import EVENTS

    hook = _hook(api, staff, receiver, institution=None, events=EVENTS)
    repo = publish_folder(registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    made = api(
        "POST", f"/api/v1/models/{repo.repo_id}/access-requests", token=staff["rita"], json={}
    )
    api(
        "POST", f"/api/v1/access-requests/{made.json['id']}/decision", token=staff["head"],
        json={"decision": "accept"},
    )  # fmt: skip
    pub = people.token(people.user("pub@hosp.org", institution="hosp", role="publisher"))
    withdrawn = api(
        "POST", f"/api/v1/models/{repo.repo_id}/versions/{repo.commit}/withdraw", token=pub,
        json={"reason": "Superseded."},
    )  # fmt: skip
    assert withdrawn.status_code == 200, withdrawn.json
    newcomer = people.token(people.user("new@uni.example"))
    application = api(
        "POST", "/api/v1/credentials", token=newcomer,
        json={"full_name": "N", "affiliation": "U", "reference_name": "P",
              "reference_email": "p@uni.example", "research_summary": "S"},
    )  # fmt: skip
    api(
        "POST", f"/api/v1/credentials/{application.json['id']}/decision", token=staff["root"],
        json={"decision": "reject", "reason": "No reference."},
    )  # fmt: skip
    people.user("soon@uni.example", training_until=registry.now() + dt.timedelta(days=5))
    run_scheduled(registry)
    run_scheduled(registry)
    deliver_due(registry)
    seen = sorted(json.loads(body)["event"] for _, body in receiver.requests)
    assert seen == sorted(EVENTS)  # each event once
    assert all(
        hmac.compare_digest(h["X-Registry-Signature-256"], expected_signature(hook["secret"], b))
        for h, b in receiver.requests
    )


class ChangingDns:
    """Answers for one host name that the test changes, as a DNS rebinding attacker would.

    No DNS server can be pointed at from a test, so the resolver is replaced for this one
    name only; IP literals and every other name still go to the system resolver."""

    def __init__(self, monkeypatch, name: str) -> None:
        self.name, self.answer, self.lookups = name, "93.184.216.34", 0
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host != name:
                return real(host, port, *args, **kwargs)
            self.lookups += 1
            answer = self.answer() if callable(self.answer) else self.answer
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_points_inside_after_creation_is_refused_at_delivery(
    api, registry, staff, receiver, monkeypatch
) -> None:
    from registry.models import OutboxMessage

    dns = ChangingDns(monkeypatch, "hooks.rebind.example")
    port = receiver.server.server_address[1]
    url = f"http://hooks.rebind.example:{port}/hooks/registry"
    made = _create(api, staff["head"], url, ["version.published"], institution="hosp")
    assert made.status_code == 201, made.json  # public when the hook is made
    dns.answer = "127.0.0.1"  # ... and the name now points at the registry's own host
    sent = api("POST", f"/api/v1/webhooks/{made.json['id']}/test", token=staff["head"])
    assert sent.status_code == 202
    assert deliver_due(registry).failed == 1
    assert receiver.requests == []
    with unit_of_work(registry.sessions) as db:
        [row] = db.query(OutboxMessage).all()
        assert row.status == "failed"
        assert "resolves to 127.0.0.1, a loopback address" in row.last_error
    log = api("GET", f"/api/v1/webhooks/{made.json['id']}/deliveries", token=staff["head"])
    assert "a loopback address" in log.json[0]["last_error"]


def test_a_delivery_connects_to_the_address_it_checked(
    api, registry, staff, receiver, monkeypatch
) -> None:
    """A second lookup (the one a plain HTTP client would make) cannot move the request."""
    dns = ChangingDns(monkeypatch, "hooks.rebind.example")
    answers = iter(["127.0.0.1", "127.0.0.1"])  # creation's and the delivery's check
    dns.answer = lambda: next(answers, "192.0.2.1")  # any later lookup: elsewhere
    port = receiver.server.server_address[1]
    url = f"http://hooks.rebind.example:{port}/hooks/registry"
    made = _create(
        api, staff["root"], url, ["version.published"], institution="hosp", allow_private=True
    )
    assert made.status_code == 201, made.json
    api("POST", f"/api/v1/webhooks/{made.json['id']}/test", token=staff["root"])
    assert deliver_due(registry).sent == 1
    [(headers, _body)] = receiver.requests
    assert headers["Host"] == f"hooks.rebind.example:{port}"
    assert dns.lookups == 2


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """The loopback receiver behind TLS with a certificate for ``hooks.tls.example`` only."""
    import ssl

    from tests.fixtures.tls import self_signed
    from tests.fixtures.webhooks import Receiver

    cert, key = self_signed(tmp_path, "hooks.tls.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the registry trusts the test's CA only
    server = Receiver()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    yield server
    server.stop()


def test_an_https_hook_is_verified_against_its_name_while_connecting_to_the_checked_address(
    api, registry, staff, tls_receiver, monkeypatch
) -> None:
    from registry.models import OutboxMessage

    ChangingDns(monkeypatch, "hooks.tls.example").answer = "127.0.0.1"
    ChangingDns(monkeypatch, "hooks.other.example").answer = "127.0.0.1"
    port = tls_receiver.server.server_address[1]
    ids = {}
    for name in ("hooks.tls.example", "hooks.other.example"):
        made = _create(
            api, staff["root"], f"https://{name}:{port}/hook", ["version.published"],
            institution="hosp", allow_private=True,
        )  # fmt: skip
        assert made.status_code == 201, made.json
        ids[name] = made.json["id"]
        api("POST", f"/api/v1/webhooks/{made.json['id']}/test", token=staff["root"])
    report = deliver_due(registry)
    assert (report.sent, report.retrying) == (1, 1), report
    [(headers, _body)] = tls_receiver.requests  # only the hook whose name the cert matches
    assert headers["Host"] == f"hooks.tls.example:{port}"
    with unit_of_work(registry.sessions) as db:
        other = db.query(OutboxMessage).filter_by(webhook_id=ids["hooks.other.example"]).one()
        assert other.status == "queued" and "CERTIFICATE_VERIFY_FAILED" in other.last_error
