"""Identity you can trust: a mailed link proves the address before any role, credential or
gated tier attaches to it; addresses are canonical; forgotten passwords are reset by mail.

Mail goes through a real SMTP server on loopback (aiosmtpd) and the registry's own worker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.mail.worker import deliver_due
from registry.unit_of_work import unit_of_work
from tests.conftest import make_settings
from tests.fixtures.mail import body_of, link_in
from tests.fixtures.principals import DUA, PASSWORD, Api, People
from tests.fixtures.repos import publish_folder
from tests.web.test_security import csrf_token

pytestmark = pytest.mark.usefixtures("cheap_passwords")
NEWHIRE = "newhire@hosp.org"
NEW_PASSWORD = "a-brand-new-password-7"
WEIGHTS = "model_index.json"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server):
    return make_settings(
        database_url, tmp_path, public_url="http://127.0.0.1", smtp_url=smtp_server.url
    )


def _register(api: Api, email: str = NEWHIRE, password: str = PASSWORD):
    body = {"email": email, "password": password, "display_name": "New", "accept_terms": True}
    return api("POST", "/api/v1/register", json=body)


def _user(registry, email: str):
    from registry.models import User

    with unit_of_work(registry.sessions) as db:
        return db.scalar(select(User).where(User.email == email))


def _whoami(client, token: str) -> dict:
    return client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {token}"}).json


def _download(client, repo: str, token: str):
    return client.get(
        f"/{repo}/resolve/main/{WEIGHTS}", headers={"Authorization": f"Bearer {token}"}
    )


def _take_over_by_reset(app, registry, smtp_server) -> Api:
    """The owner of NEWHIRE's mailbox resets the password; the reset proves the address."""
    owner = Api(app.test_client())
    assert owner("POST", "/api/v1/password/forgot", json={"email": NEWHIRE}).status_code == 202
    deliver_due(registry)
    link = link_in(smtp_server.one(NEWHIRE, "Choose a new password"), "/password/reset/")
    reset = owner(
        "POST", "/api/v1/password/reset",
        json={"token": link.rsplit("/", 1)[1], "new_password": NEW_PASSWORD},
    )  # fmt: skip
    assert reset.status_code == 200 and reset.json["email_verified"] is True
    return owner


def _follow_web_link(client, path: str, **form: str):
    """Open a mailed link in the browser: the page shows a button, the button posts."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(path, data={"csrf_token": token, **form})


def test_registration_mails_one_link_and_nothing_attaches_before_it_is_opened(
    app, client, registry, people, smtp_server, tiny_model_dir
) -> None:
    repo = publish_folder(registry, "hosp/cxr-reg", tiny_model_dir, tier="registered").repo_id
    head = people.user("head@hosp.org", institution="hosp", role="institution-admin")
    head_token = people.token(head)
    api = Api(client)

    assert _register(api).status_code == 201
    assert deliver_due(registry).sent == 1
    mail = smtp_server.one(NEWHIRE)
    assert "Verify your email address" in mail["Subject"] and "RoentGen Registry" in mail["Subject"]
    link = link_in(mail, "/account/verify/")
    newhire = people.token(_user(registry, NEWHIRE).id)

    # Before the link is opened: no role, no tier above open, and each refusal says why.
    refused = api(
        "PUT",
        f"/api/v1/institutions/hosp/members/{NEWHIRE}",
        token=head_token,
        json={"role": "publisher"},
    )
    assert refused.status_code == 409
    assert f"verify your email (link sent to {NEWHIRE} on" in refused.json["error"]
    assert "resend at /account/verify)" in refused.json["error"]
    gated = _download(client, repo, newhire)
    assert gated.status_code == 403 and gated.headers["X-Error-Code"] == "GatedRepo"
    message = gated.headers["X-Error-Message"]
    assert f"verify your email (link sent to {NEWHIRE} on" in message
    assert "resend at http://127.0.0.1/account/verify)" in message
    tiers = api("GET", "/api/v1/me", token=newhire).json["tiers"]
    assert tiers["open"]["eligible"] and not tiers["registered"]["eligible"]
    assert _whoami(client, newhire)["emailVerified"] is False

    opened = _follow_web_link(client, link)
    assert opened.status_code == 302
    assert _whoami(client, newhire)["emailVerified"] is True
    member = api(
        "PUT",
        f"/api/v1/institutions/hosp/members/{NEWHIRE}",
        token=head_token,
        json={"role": "publisher"},
    )
    assert member.status_code == 200 and member.json["role"] == "publisher"
    assert _download(client, repo, newhire).status_code == 200
    # The link works once.
    again = client.get(link)
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)
    assert len(smtp_server.to(NEWHIRE)) == 1


def test_credential_and_training_are_not_accepted_for_an_unverified_address(
    api, people, registry
) -> None:
    from registry.models import CredentialApplication, Training

    admin = people.token(people.user("root@example.org", admin=True))
    squatter = people.user("someone@hosp.org", email_verified=False)
    with unit_of_work(registry.sessions) as db:
        application = CredentialApplication(
            user_id=squatter, full_name="S", affiliation="Hosp", reference_name="R",
            reference_email="r@example.org", research_summary="x", created_at=registry.now(),
        )  # fmt: skip
        training = Training(
            user_id=squatter, kind="citi-dsor", verification_url="https://citi.example/v",
            created_at=registry.now(),
        )  # fmt: skip
        db.add_all([application, training])
        db.flush()
        ids = application.id, training.id
    accept = {"decision": "accept"}
    for url in (f"/api/v1/credentials/{ids[0]}/decision", f"/api/v1/trainings/{ids[1]}/decision"):
        refused = api("POST", url, token=admin, json=accept)
        assert refused.status_code == 409, (url, refused.json)
        assert "verify your email (no link sent to someone@hosp.org yet" in refused.json["error"]
    # Refusing them is still possible.
    rejected = api(
        "POST", f"/api/v1/credentials/{ids[0]}/decision", token=admin,
        json={"decision": "reject", "reason": "Unknown person"},
    )  # fmt: skip
    assert rejected.status_code == 200


def test_the_squatter_gets_no_role_and_the_owner_takes_the_account_back(
    app, client, registry, people, smtp_server
) -> None:
    head_token = people.token(
        people.user("head@hosp.org", institution="hosp", role="institution-admin")
    )
    squatter = Api(app.test_client())
    assert _register(squatter, password="squatters-password").status_code == 201
    login = squatter(
        "POST", "/api/v1/login", json={"email": NEWHIRE, "password": "squatters-password"}
    )
    assert login.status_code == 200
    made = squatter("POST", "/api/v1/tokens", json={"name": "laptop", "scope": "read"})
    assert made.status_code == 201, made.json
    squatters_token = made.json["token"]

    # The institution admin adds the new hire's address as publisher: refused, not handed over.
    refused = Api(client)(
        "PUT", f"/api/v1/institutions/hosp/members/{NEWHIRE}", token=head_token,
        json={"role": "publisher"},
    )  # fmt: skip
    assert refused.status_code == 409 and "verify your email" in refused.json["error"]
    assert squatter("GET", "/api/v1/me").json["institution"] is None

    # The real new hire reads the mailbox: the mail and its page say not to verify an account
    # they did not create, but to take it over with a new password.
    deliver_due(registry)
    unasked = smtp_server.one(NEWHIRE, "Verify your email address")
    assert "If you did not create it, do not open the link" in body_of(unasked)
    assert link_in(unasked, "/password/forgot")
    page = client.get(link_in(unasked, "/account/verify/")).get_data(as_text=True)
    assert "Did not create this account?" in page and 'href="/password/forgot"' in page
    # Resetting the password proves the address and logs the squatter out.
    _take_over_by_reset(app, registry, smtp_server)
    assert squatter("GET", "/api/v1/me").status_code == 401
    # Tokens made before the address was proven were the squatter's: they end too.
    assert Api(client)("GET", "/api/v1/me", token=squatters_token).status_code == 401
    deliver_due(registry)
    notice = smtp_server.latest(NEWHIRE, "Your password was changed")
    assert "The API token made before the address was verified was revoked" in body_of(notice)
    added = Api(client)(
        "PUT", f"/api/v1/institutions/hosp/members/{NEWHIRE}", token=head_token,
        json={"role": "publisher"},
    )  # fmt: skip
    assert added.status_code == 200


LOOK_ALIKES = {
    NEWHIRE + "\u200b": "U+200B",  # a trailing zero-width space
    "newhire\x00@hosp.org": "U+0000",  # a NUL
    "newhire@hosp.org\u202e": "U+202E",  # a bidi override
    "newh\u0456re@hosp.org": "mixes Cyrillic and Latin letters in its local part",
    "newhire@\u04bbosp.org": "mixes Cyrillic and Latin letters in its domain",
    "newhire@" + "\u04bbosp.org".encode("idna").decode(): "in its domain",  # the same, as punycode
}
SAME_ACCOUNT = (
    "NewHire@HOSP.org",
    "\uff4e\uff45\uff57\uff48\uff49\uff52\uff45@hosp.org",
    " newhire@hosp.org ",
)


def test_look_alike_addresses_are_refused_or_are_the_same_account(api, people) -> None:
    assert _register(api).status_code == 201
    for address, why in LOOK_ALIKES.items():
        refused = _register(api, address)
        assert refused.status_code == 422, address
        assert why in refused.json["error"], (address, refused.json["error"])
    for address in SAME_ACCOUNT:
        taken = _register(api, address)
        assert taken.status_code == 409, address
        assert f"An account for {NEWHIRE} already exists" in taken.json["error"]
        login = api("POST", "/api/v1/login", json={"email": address, "password": PASSWORD})
        assert login.status_code == 200 and login.json["email"] == NEWHIRE


def test_reset_link_works_once_expires_and_ends_every_other_session(
    app, client, registry, people, smtp_server
) -> None:
    uid = people.user("ada@example.org")
    token = people.token(uid)
    browsers = [Api(app.test_client()) for _ in range(2)]
    for browser in browsers:
        login = browser(
            "POST", "/api/v1/login", json={"email": "ada@example.org", "password": PASSWORD}
        )
        assert login.status_code == 200

    known = Api(client)("POST", "/api/v1/password/forgot", json={"email": "ada@example.org"})
    unknown = Api(client)("POST", "/api/v1/password/forgot", json={"email": "nobody@example.org"})
    assert (known.status_code, known.json) == (unknown.status_code, unknown.json)
    assert known.status_code == 202 and "If an account uses that address" in known.json["message"]
    deliver_due(registry)
    assert smtp_server.to("nobody@example.org") == []
    link = link_in(smtp_server.one("ada@example.org", "Choose a new password"), "/password/reset/")

    done = _follow_web_link(client, link, new_password=NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    for browser in browsers:
        assert browser("GET", "/api/v1/me").status_code == 401  # logged out everywhere
    assert Api(client)("GET", "/api/v1/me", token=token).status_code == 200  # tokens stay
    old = {"email": "ada@example.org", "password": PASSWORD}
    assert Api(client)("POST", "/api/v1/login", json=old).status_code == 401
    new = {"email": "ada@example.org", "password": NEW_PASSWORD}
    assert Api(client)("POST", "/api/v1/login", json=new).status_code == 200
    deliver_due(registry)
    notice = smtp_server.one("ada@example.org", "Your password was changed")
    assert "every session of the account was logged out" in body_of(notice)

    used = client.get(link)
    assert used.status_code == 400 and "already used" in used.get_data(as_text=True)

    # A link expires after an hour.
    forgot = Api(app.test_client())(
        "POST", "/api/v1/password/forgot", json={"email": "ada@example.org"}
    )
    assert forgot.status_code == 202
    deliver_due(registry)
    late = link_in(smtp_server.latest("ada@example.org", "Choose a new"), "/password/reset/")
    start = registry.now()
    registry.clock = lambda: start + dt.timedelta(minutes=61)
    expired = client.get(late)
    assert expired.status_code == 400 and "This link expired on" in expired.get_data(as_text=True)


def test_reset_requests_are_limited_per_account_with_the_same_answer(
    client, registry, people, smtp_server
) -> None:
    people.user("ada@example.org")
    answers = [
        Api(client)("POST", "/api/v1/password/forgot", json={"email": "ada@example.org"}).json
        for _ in range(5)
    ]
    assert all(answer == answers[0] for answer in answers)
    deliver_due(registry)
    assert len(smtp_server.to("ada@example.org")) == 3  # MAX_RESETS_PER_HOUR


def test_reset_and_password_change_are_limited_per_client_address(settings, people) -> None:
    from registry.app import create_app

    limited = dataclasses.replace(settings, ratelimit_enabled=True)
    app = create_app(settings=limited)
    client = app.test_client()
    env = {"REMOTE_ADDR": "198.51.100.77"}
    body = {"email": "nobody@example.org"}
    codes = [
        client.post("/api/v1/password/forgot", json=body, environ_base=env).status_code
        for _ in range(11)
    ]
    assert codes == [202] * 10 + [429]
    others = People(app.extensions["registry"])
    token = others.token(others.user("ada@example.org"))
    change = {"current_password": "wrong-password-x", "new_password": NEW_PASSWORD}
    headers = {"Authorization": f"Bearer {token}"}
    codes = [
        client.post(
            "/api/v1/me/password", json=change, headers=headers, environ_base=env
        ).status_code
        for _ in range(11)
    ]
    assert codes == [403] * 10 + [429]


def test_changing_the_address_needs_the_new_one_proven_and_tells_the_old_one(
    client, registry, people, smtp_server
) -> None:
    uid = people.user("ada@example.org")
    token = people.token(uid)
    api = Api(client)
    wrong = api(
        "POST",
        "/api/v1/me/email",
        token=token,
        json={"email": "ada@uni.example", "password": "nope"},
    )
    assert wrong.status_code == 403
    asked = api(
        "POST", "/api/v1/me/email", token=token,
        json={"email": "ada@uni.example", "password": PASSWORD},
    )  # fmt: skip
    assert asked.status_code == 202 and asked.json["sent_to"] == "ada@uni.example"
    deliver_due(registry)
    notice = smtp_server.one("ada@example.org", "Your email address is being changed")
    assert "ada@uni.example" in body_of(notice)
    assert api("GET", "/api/v1/me", token=token).json["email"] == "ada@example.org"

    link = link_in(
        smtp_server.one("ada@uni.example", "Confirm your new email"), "/account/email/confirm/"
    )
    assert _follow_web_link(client, link).status_code == 302
    me = api("GET", "/api/v1/me", token=token).json
    assert me["email"] == "ada@uni.example" and me["email_verified"] is True
    login = api("POST", "/api/v1/login", json={"email": "ADA@uni.example", "password": PASSWORD})
    assert login.status_code == 200


def test_only_a_hash_of_the_link_is_stored_anywhere(client, registry, smtp_server) -> None:
    from tests.registry.test_accounts import _dump_text

    assert _register(Api(client)).status_code == 201
    queued = _dump_text(registry)
    deliver_due(registry)
    token = link_in(smtp_server.one(NEWHIRE), "/account/verify/").rsplit("/", 1)[1]
    assert token not in queued and token not in _dump_text(registry)
    assert "[[link:" in queued  # the queued mail holds a placeholder, filled in as it leaves


def test_resend_is_refused_once_verified_and_limited_per_account(
    client, registry, people, smtp_server
) -> None:
    api = Api(client)
    assert _register(api).status_code == 201
    login = api("POST", "/api/v1/login", json={"email": NEWHIRE, "password": PASSWORD})
    assert login.status_code == 200
    codes = [api("POST", "/api/v1/me/verify-email").status_code for _ in range(5)]
    assert codes == [202] * 4 + [429]  # the registration's link counts too
    deliver_due(registry)
    assert len(smtp_server.to(NEWHIRE)) == 5
    verified = people.token(people.user("ada@example.org"))
    assert api("POST", "/api/v1/me/verify-email", token=verified).status_code == 409


def test_the_web_pages_show_and_resend_the_verification(client, registry, smtp_server) -> None:
    form = {
        "csrf_token": csrf_token(client, "/register"), "email": NEWHIRE, "password": PASSWORD,
        "display_name": "New", "accept_terms": "yes",
    }  # fmt: skip
    assert client.post("/register", data=form).status_code == 302
    profile = client.get("/account").get_data(as_text=True)
    assert 'data-email-verified="no"' in profile
    page = client.get("/account/verify").get_data(as_text=True)
    assert 'data-verified="no"' in page and f"link sent to {NEWHIRE}" in page
    resent = client.post(
        "/account/verify", data={"csrf_token": csrf_token(client, "/account/verify")}
    )
    assert resent.status_code == 302
    deliver_due(registry)
    links = [link_in(m, "/account/verify/") for m in smtp_server.to(NEWHIRE)]
    assert len(links) == 2
    assert _follow_web_link(client, links[-1]).status_code == 302
    assert 'data-email-verified="yes"' in client.get("/account").get_data(as_text=True)
    # Opening a link spends every older one too.
    assert client.get(links[0]).status_code == 400


def test_wrong_password_points_to_the_reset_page(client, people) -> None:
    people.user("ada@example.org")
    wrong = Api(client)(
        "POST", "/api/v1/login", json={"email": "ada@example.org", "password": "x" * 12}
    )
    assert wrong.status_code == 401
    assert "/password/forgot" in wrong.json["error"]
    assert "Ask a registry administrator" not in wrong.json["error"]
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/password/forgot"' in page
    assert client.get("/password/forgot").status_code == 200


def test_an_unverified_account_is_not_made_a_registry_admin(
    api, registry, people, settings, monkeypatch
) -> None:
    """The squatting story one level up: promoting the address someone registered first."""
    from click.testing import CliRunner

    from registry.cli import main

    admin = people.token(people.user("root@registry.example", admin=True))
    squatter = people.user("ops@registry.example", email_verified=False)
    refused = api(
        "PATCH", f"/api/v1/users/{squatter}", token=admin, json={"is_registry_admin": True}
    )
    assert refused.status_code == 409, refused.json
    assert "verify your email (no link sent to ops@registry.example yet" in refused.json["error"]
    for name, value in (
        ("REGISTRY_DATABASE_URL", settings.database_url),
        ("REGISTRY_INSTANCE_PATH", str(settings.instance_path)),
        ("REGISTRY_SECRET_KEY", settings.secret_key),
    ):
        monkeypatch.setenv(name, value)
    promoted = CliRunner().invoke(main, ["create-admin", "ops@registry.example"])
    assert promoted.exit_code != 0
    assert "verify your email" in promoted.output
    assert _user(registry, "ops@registry.example").is_registry_admin is False
    # Disabling the unverified account, or removing admin rights, stays possible.
    disabled = api("PATCH", f"/api/v1/users/{squatter}", token=admin, json={"is_active": False})
    assert disabled.status_code == 200


def _spellings(address: str, n: int) -> list[str]:
    """``n`` spellings of ``address`` that name the same account (case, fullwidth letters)."""
    local, domain = address.split("@")
    found = []
    for i in range(n):
        letters = [
            chr(ord(c) + 0xFEE0) if (i >> k) & 1 else (c.upper() if k % 2 else c)
            for k, c in enumerate(local)
        ]
        found.append("".join(letters) + "@" + domain)
    return found


def test_spelling_the_address_differently_does_not_escape_the_per_account_limits(
    settings, people
) -> None:
    """The per-account counters count the account, not the string typed for it."""
    from registry.app import create_app

    app = create_app(settings=dataclasses.replace(settings, ratelimit_enabled=True))
    others = People(app.extensions["registry"])
    others.user("ada@example.org")
    client = app.test_client()
    guesses = [
        client.post("/api/v1/login", json={"email": spelled, "password": "wrong-guess-x"})
        for spelled in _spellings("ada@example.org", 11)
    ]
    assert [g.status_code for g in guesses] == [401] * 10 + [429]
    assert "for this account" in guesses[-1].json["error"]

    # Reset requests: the same answers for a known and an unknown account, limit included.
    def answers(address: str) -> list[tuple[int, dict]]:
        return [
            (r.status_code, r.json)
            for r in (
                client.post("/api/v1/password/forgot", json={"email": spelled})
                for spelled in _spellings(address, 11)
            )
        ]

    others.user("bea@example.org")
    known, unknown = answers("bea@example.org"), answers("bob@example.org")
    assert [code for code, _ in known] == [202] * 10 + [429]
    assert known == unknown


def test_password_guesses_through_the_address_change_are_limited_per_account(
    settings, people
) -> None:
    """The address change asks for the password: naming a new address each time is still
    one account guessing (the counter is the signed-in account's, shared with /me/password)."""
    from registry.app import create_app

    app = create_app(settings=dataclasses.replace(settings, ratelimit_enabled=True))
    others = People(app.extensions["registry"])
    headers = {"Authorization": f"Bearer {others.token(others.user('ada@example.org'))}"}
    client = app.test_client()
    codes = [
        client.post(
            "/api/v1/me/email",
            json={"email": f"new{i}@uni.example", "password": "wrong-guess-x"},
            headers=headers,
        ).status_code
        for i in range(6)
    ]
    change = {"current_password": "wrong-guess-x", "new_password": NEW_PASSWORD}
    codes += [
        client.post("/api/v1/me/password", json=change, headers=headers).status_code
        for _ in range(5)
    ]
    assert codes == [403] * 10 + [429]


def test_an_access_request_of_an_unverified_address_is_not_accepted(
    api, registry, people, tiny_model_dir
) -> None:
    """Like credentials and trainings: a grant attaches only to a proven address (else the
    squatter's request, granted, would follow the account to whoever proves it later)."""
    repo = publish_folder(registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    head = people.token(people.user("head@hosp.org", institution="hosp", role="institution-admin"))
    asker = people.token(
        people.user("asker@uni.example", email_verified=False, credentialed=True, dua=DUA)
    )
    made = api("POST", f"/api/v1/models/{repo.repo_id}/access-requests", token=asker, json={})
    assert made.status_code == 201
    assert "email-verified" in [m["requirement"] for m in made.json["still_missing"]]
    url = f"/api/v1/access-requests/{made.json['id']}/decision"
    refused = api("POST", url, token=head, json={"decision": "accept"})
    assert refused.status_code == 409, refused.json
    assert "verify your email (no link sent to asker@uni.example yet" in refused.json["error"]
    rejected = api("POST", url, token=head, json={"decision": "reject", "reason": "Who are you?"})
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"


def test_a_hospital_behind_one_address_verifies_everyone_who_registers(
    settings, smtp_server
) -> None:
    """Thirty new hires on one NAT address ask for and open their links within the hour:
    all verified (a link is unguessable; resending is limited per account, not address)."""
    from registry.app import create_app

    app = create_app(settings=dataclasses.replace(settings, ratelimit_enabled=True))
    registry = app.extensions["registry"]
    people = People(registry)
    client = app.test_client()
    env = {"REMOTE_ADDR": "198.51.100.8"}
    answers = []
    for i in range(30):
        address = f"hire{i}@hosp.org"
        bearer = {
            "Authorization": f"Bearer {people.token(people.user(address, email_verified=False))}"
        }
        sent = client.post("/api/v1/me/verify-email", headers=bearer, environ_base=env)
        if sent.status_code != 202:
            answers.append((sent.status_code, None))
            continue
        deliver_due(registry)
        token = link_in(smtp_server.latest(address, "Verify"), "/account/verify/").rsplit("/", 1)[1]
        opened = client.post("/api/v1/verify-email", json={"token": token}, environ_base=env)
        answers.append((sent.status_code, opened.status_code))
    assert answers == [(202, 200)] * 30
    # One address trying made-up links still meets the per-address ceiling.
    tries = [
        client.post("/api/v1/verify-email", json={"token": f"guess-{i}"}, environ_base=env)
        for i in range(41)
    ]
    assert [t.status_code for t in tries] == [400] * 40 + [429]
    registry.engine.dispose()


def test_verification_and_address_change_links_expire(
    client, registry, people, smtp_server
) -> None:
    """The registration link lasts 48 hours, the address-change link 24; then the page says
    so and where to get a new one, and nothing changes."""
    assert _register(Api(client)).status_code == 201
    uid = people.user("ada@example.org")
    asked = Api(client)(
        "POST", "/api/v1/me/email", token=people.token(uid),
        json={"email": "ada@uni.example", "password": PASSWORD},
    )  # fmt: skip
    assert asked.status_code == 202
    deliver_due(registry)
    verify = link_in(smtp_server.one(NEWHIRE), "/account/verify/")
    change = link_in(smtp_server.one("ada@uni.example"), "/account/email/confirm/")
    start = registry.now()
    registry.clock = lambda: start + dt.timedelta(hours=24, minutes=1)
    late = client.get(change)
    assert late.status_code == 400 and "This link expired on" in late.get_data(as_text=True)
    assert client.get(verify).status_code == 200  # still good for another day
    registry.clock = lambda: start + dt.timedelta(hours=48, minutes=1)
    late = client.get(verify)
    assert late.status_code == 400 and "This link expired on" in late.get_data(as_text=True)
    assert "/account/verify" in late.get_data(as_text=True)  # where to get a new one
    token = verify.rsplit("/", 1)[1]
    refused = Api(client)("POST", "/api/v1/verify-email", json={"token": token})
    assert refused.status_code == 400 and "expired" in refused.json["error"]
    assert _user(registry, NEWHIRE).email_verified_at is None
    assert _user(registry, "ada@example.org") is not None  # the address did not change


def test_an_unverified_account_cannot_sign_a_dua(client, registry, smtp_server) -> None:
    """A DUA binds the person the address names: the squatter cannot sign in their name, and
    the owner who takes the account over inherits no signature they never gave."""
    api = Api(client)
    assert _register(api).status_code == 201
    login = api("POST", "/api/v1/login", json={"email": NEWHIRE, "password": PASSWORD})
    assert login.status_code == 200
    url = "/api/v1/duas/physionet-credentialed-1.5.0/signatures"
    refused = api("POST", url, json={"full_name": "Someone Else"})
    assert refused.status_code == 409, refused.json
    assert f"verify your email (link sent to {NEWHIRE} on" in refused.json["error"]
    page = "/duas/physionet-credentialed-1.5.0"
    form = {"csrf_token": csrf_token(client, page), "full_name": "Someone Else", "agree": "yes"}
    on_the_web = client.post(page, data=form)
    assert on_the_web.status_code == 409
    assert "verify your email (link sent to" in on_the_web.get_data(as_text=True)
    deliver_due(registry)
    assert _follow_web_link(client, link_in(smtp_server.one(NEWHIRE), "/account/verify/"))
    signed = api("POST", url, json={"full_name": "New Hire"})
    assert signed.status_code in (200, 201), signed.json


def test_changing_the_password_cancels_a_pending_address_change(
    client, registry, people, smtp_server
) -> None:
    """What the notice to the old address promises: a thief's address change dies with a new
    password."""
    uid = people.user("ada@example.org")
    token = people.token(uid)
    api = Api(client)
    asked = api(
        "POST", "/api/v1/me/email", token=token,
        json={"email": "thief@evil.example", "password": PASSWORD},
    )  # fmt: skip
    assert asked.status_code == 202
    start = registry.now()
    registry.clock = lambda: start + dt.timedelta(minutes=5)
    changed = api(
        "POST", "/api/v1/me/password", token=token,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )  # fmt: skip
    assert changed.status_code == 200, changed.json
    deliver_due(registry)
    link = link_in(smtp_server.one("thief@evil.example"), "/account/email/confirm/")
    refused = _follow_web_link(client, link)
    assert refused.status_code == 409
    assert "The password was changed after this request" in refused.get_data(as_text=True)
    assert api("GET", "/api/v1/me", token=token).json["email"] == "ada@example.org"


def test_a_hospital_behind_one_address_resets_many_passwords(settings, smtp_server) -> None:
    """Fifteen people on one NAT address reset their passwords within the hour (API and web):
    every link works; the per-account limit counts accounts, not the shared address."""
    from registry.app import create_app

    app = create_app(settings=dataclasses.replace(settings, ratelimit_enabled=True))
    registry = app.extensions["registry"]
    people = People(registry)
    env = {"REMOTE_ADDR": "198.51.100.9"}
    answers = []
    for i in range(15):
        address = f"staff{i}@hosp.org"
        people.user(address)
        client = app.test_client()
        asked = client.post("/api/v1/password/forgot", json={"email": address}, environ_base=env)
        deliver_due(registry)
        link = link_in(smtp_server.one(address, "Choose a new password"), "/password/reset/")
        if i % 2:
            body = {"token": link.rsplit("/", 1)[1], "new_password": NEW_PASSWORD}
            done = client.post("/api/v1/password/reset", json=body, environ_base=env)
        else:
            form = {"csrf_token": csrf_token(client, link), "new_password": NEW_PASSWORD}
            done = client.post(link, data=form, environ_base=env)
        answers.append((asked.status_code, done.status_code))
    assert answers == [(202, 200 if i % 2 else 302) for i in range(15)]
    registry.engine.dispose()


def test_a_reset_that_proves_the_address_closes_what_the_squatter_left_waiting(
    app, client, registry, people, smtp_server, tiny_model_dir
) -> None:
    """A squatter's pending application, training and access request do not pass to the owner.

    Reviewers would otherwise accept them after the takeover, under the owner's now verified
    address, although the squatter typed their details.
    """
    from registry.models import AccessRequest, Model
    from tests.registry.test_access_credentials import APPLICATION

    admin = people.token(people.user("root@example.org", admin=True))
    publish_folder(registry, "demo/cr", tiny_model_dir, tier="contributor-review")
    squatter = Api(app.test_client())
    assert _register(squatter, password="squatters-password").status_code == 201
    assert (
        squatter(
            "POST", "/api/v1/login", json={"email": NEWHIRE, "password": "squatters-password"}
        ).status_code
        == 200
    )
    application = squatter("POST", "/api/v1/credentials", json=APPLICATION)
    assert application.status_code == 201, application.json
    training = squatter(
        "POST", "/api/v1/trainings",
        json={"kind": "citi-dsor", "verification_url": "https://citi.example/squatter"},
    )  # fmt: skip
    assert training.status_code == 201, training.json
    with unit_of_work(registry.sessions) as db:
        model = db.scalar(select(Model).where(Model.name == "cr"))
        request = AccessRequest(
            user_id=_user(registry, NEWHIRE).id, model_id=model.id, fields={},
            created_at=registry.now(),
        )  # fmt: skip
        db.add(request)
        db.flush()
        request_id = request.id

    owner = _take_over_by_reset(app, registry, smtp_server)

    review = Api(client)
    queue = review("GET", "/api/v1/credentials/review?status=pending", token=admin)
    assert NEWHIRE not in [a["user"] for a in queue.json]
    for url in (
        f"/api/v1/credentials/{application.json['id']}/decision",
        f"/api/v1/trainings/{training.json['id']}/decision",
        f"/api/v1/access-requests/{request_id}/decision",
    ):
        accepted = review("POST", url, token=admin, json={"decision": "accept"})
        assert accepted.status_code == 409, (url, accepted.json)
    login = owner("POST", "/api/v1/login", json={"email": NEWHIRE, "password": NEW_PASSWORD})
    assert login.status_code == 200
    mine = owner("GET", "/api/v1/credentials").json
    assert mine[0]["status"] == "rejected" and "password reset" in mine[0]["reason"]
    deliver_due(registry)
    notice = body_of(smtp_server.latest(NEWHIRE, "Your password was changed"))
    assert "3 waiting requests (credential application, training or access request) made" in notice
    assert "before the address was verified were closed" in notice
    # The owner can apply in their own name at once.
    again = owner("POST", "/api/v1/credentials", json=APPLICATION)
    assert again.status_code == 201, again.json
