"""People hear back: each notification arrives (subject, recipient, link) when its event
happens, here always while the mail server is down, so it arrives once it comes back, once.

The mail server is aiosmtpd on loopback; the events come from the registry's own API.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from registry.mail.worker import BACKOFF, deliver_due
from registry.notifications.scheduled import run_scheduled
from tests.conftest import make_settings
from tests.fixtures.mail import SmtpServer, body_of, link_in
from tests.fixtures.principals import DUA, Api, People
from tests.fixtures.repos import publish_folder
from tests.registry.publishing_helpers import UploadApi, folder_files

pytestmark = pytest.mark.usefixtures("cheap_passwords")
SECRETS = re.compile(r"rgr_|whsec_|\[\[link:|correct-horse")


@pytest.fixture
def smtp() -> SmtpServer:
    server = SmtpServer()  # down until an outage has been seen
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: SmtpServer):
    return make_settings(database_url, tmp_path, public_url="http://127.0.0.1", smtp_url=smtp.url)


class World:
    """The people of a small registry, an API client and the mail server."""

    def __init__(self, registry, client, smtp: SmtpServer) -> None:
        self.registry, self.smtp, self.api = registry, smtp, Api(client)
        self.people = People(registry)
        self.tokens: dict[str, str] = {}
        self.clock = registry.now()
        registry.clock = lambda: self.clock

    def person(self, email: str, **standing) -> str:
        self.tokens[email] = self.people.token(self.people.user(email, **standing))
        return self.tokens[email]

    def call(self, who: str, method: str, url: str, **kwargs):
        response = self.api(method, url, token=self.tokens[who], **kwargs)
        assert response.status_code < 400, (url, response.json)
        return response.json

    def deliver(self) -> None:
        """Deliver the outbox while the mail server is down, then again once it is back."""
        self.smtp.stop()
        down = deliver_due(self.registry)
        assert down.sent == 0 and down.retrying > 0, down
        self.smtp.start()
        self.clock += BACKOFF[0]
        back = deliver_due(self.registry)
        assert (back.sent, back.retrying, back.failed) == (down.retrying, 0, 0)  # none lost
        assert deliver_due(self.registry).sent == 0  # nothing left, nothing twice

    def mail(self, to: str, subject: str, link: str):
        """The one mail to ``to`` about ``subject``, checked: registry named, link, no secret."""
        found = [m for m in self.smtp.to(to) if subject in str(m["Subject"])]
        assert len(found) == 1, (to, subject, [str(m["Subject"]) for m in self.smtp.to(to)])
        mail = found[0]
        assert str(mail["Subject"]).startswith("[RoentGen Registry] ")
        assert "RoentGen Registry" in body_of(mail)
        assert link_in(mail, link)
        assert not SECRETS.search(body_of(mail)), body_of(mail)
        return mail

    def subjects(self, to: str) -> list[str]:
        return [str(m["Subject"]) for m in self.smtp.to(to)]


@pytest.fixture
def world(registry, client, smtp) -> World:
    return World(registry, client, smtp)


APPLICATION = {
    "full_name": "Rita Researcher",
    "affiliation": "University",
    "reference_name": "Prof. Ref",
    "reference_email": "ref@uni.example",
    "research_summary": "Synthetic effusions.",
}


def test_credential_and_training_decisions_reach_the_applicant_with_the_reason(world) -> None:
    world.person("root@registry.example", admin=True)
    world.person("rita@uni.example")
    world.person("head@hosp.org", institution="hosp", role="institution-admin")
    application = world.call("rita@uni.example", "POST", "/api/v1/credentials", json=APPLICATION)
    training = world.call(
        "rita@uni.example", "POST", "/api/v1/trainings",
        json={"kind": "citi-dsor", "verification_url": "https://citi.example/v/1"},
    )  # fmt: skip
    world.deliver()
    # New items waiting: the registry admin hears of both; an institution admin does not.
    world.mail(
        "root@registry.example", "New credentialing application waiting", "/admin/credentials"
    )
    world.mail("root@registry.example", "New training certificate waiting", "/admin/trainings")
    assert world.subjects("head@hosp.org") == []

    world.call(
        "root@registry.example", "POST", f"/api/v1/credentials/{application['id']}/decision",
        json={"decision": "reject", "reason": "The reference did not answer."},
    )  # fmt: skip
    world.call(
        "root@registry.example", "POST", f"/api/v1/trainings/{training['id']}/decision",
        json={"decision": "accept"},
    )  # fmt: skip
    world.deliver()
    rejected = world.mail(
        "rita@uni.example", "Your credentialing application was rejected", "/account/credentials"
    )
    assert "The reference did not answer." in body_of(rejected)
    world.mail(
        "rita@uni.example", "Your citi-dsor training certificate was accepted", "/account/trainings"
    )
    renewal = world.call(
        "rita@uni.example", "POST", "/api/v1/trainings",
        json={"kind": "citi-dsor", "verification_url": "https://citi.example/v/2"},
    )  # fmt: skip
    world.call(
        "root@registry.example", "POST", f"/api/v1/trainings/{renewal['id']}/decision",
        json={"decision": "reject", "reason": "The certificate names someone else."},
    )  # fmt: skip
    world.deliver()
    refused = world.mail(
        "rita@uni.example", "Your citi-dsor training certificate was rejected", "/account/trainings"
    )
    assert "The certificate names someone else." in body_of(refused)


def test_access_requests_reach_their_reviewers_and_the_decision_the_requester(
    world, tiny_model_dir
) -> None:
    world.people.institution("hosp")
    repo = publish_folder(world.registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    world.person("head@hosp.org", institution="hosp", role="institution-admin")
    world.person("head@other.org", institution="other", role="institution-admin")
    world.person("root@registry.example", admin=True)
    world.person("rita@uni.example", credentialed=True, dua=DUA)
    created = world.call(
        "rita@uni.example", "POST", f"/api/v1/models/{repo.repo_id}/access-requests", json={}
    )
    world.deliver()
    for reviewer in ("head@hosp.org", "root@registry.example"):
        world.mail(
            reviewer, f"New access request for {repo.repo_id} waiting", "/admin/access-requests"
        )
    assert world.subjects("head@other.org") == []  # not their institution's model

    world.call(
        "head@hosp.org", "POST", f"/api/v1/access-requests/{created['id']}/decision",
        json={"decision": "reject", "reason": "Describe the project first."},
    )  # fmt: skip
    world.deliver()
    mail = world.mail(
        "rita@uni.example", f"Your access request for {repo.repo_id} was rejected",
        f"/models/{repo.repo_id}",
    )  # fmt: skip
    assert "Describe the project first." in body_of(mail)

    # Asked again, accepted, later revoked: each decision reaches Rita with its reason.
    again = world.call(
        "rita@uni.example", "POST", f"/api/v1/models/{repo.repo_id}/access-requests",
        json={},
    )  # fmt: skip
    world.call(
        "head@hosp.org", "POST", f"/api/v1/access-requests/{again['id']}/decision",
        json={"decision": "accept"},
    )  # fmt: skip
    world.call(
        "head@hosp.org", "POST", f"/api/v1/access-requests/{again['id']}/revoke",
        json={"reason": "The project ended."},
    )  # fmt: skip
    world.deliver()
    world.mail(
        "rita@uni.example", f"access request for {repo.repo_id} was accepted",
        f"/models/{repo.repo_id}",
    )  # fmt: skip
    revoked = world.mail(
        "rita@uni.example", f"access request for {repo.repo_id} was revoked",
        f"/models/{repo.repo_id}",
    )  # fmt: skip
    assert "The project ended." in body_of(revoked)


def test_a_digest_reviewer_gets_one_summary_a_day_instead(world) -> None:
    world.person("root@registry.example", admin=True)
    world.call(
        "root@registry.example", "PUT", "/api/v1/me/notifications", json={"reviews": "digest"}
    )
    world.person("rita@uni.example")
    world.person("li@uni.example")
    for who in ("rita@uni.example", "li@uni.example"):
        world.call(who, "POST", "/api/v1/credentials", json=APPLICATION)
    run_scheduled(world.registry)
    run_scheduled(world.registry)  # every process, every ten minutes: still one digest
    world.deliver()
    assert world.subjects("root@registry.example") == [
        "[RoentGen Registry] 2 items waiting for your review"
    ]
    digest = world.mail("root@registry.example", "waiting for your review", "/admin/credentials")
    assert "2  credentialing applications" in body_of(digest)
    world.clock += dt.timedelta(days=1)
    run_scheduled(world.registry)
    world.deliver()
    assert len(world.subjects("root@registry.example")) == 2  # the next day's digest


def test_an_institution_admins_digest_counts_their_own_models_requests(
    world, tiny_model_dir
) -> None:
    world.people.institution("hosp")
    world.people.institution("other")
    repo = publish_folder(world.registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    for head in ("head@hosp.org", "head@other.org"):
        world.person(head, institution=head.split("@")[1][:-4], role="institution-admin")
        world.call(head, "PUT", "/api/v1/me/notifications", json={"reviews": "digest"})
    world.person("rita@uni.example", credentialed=True, dua=DUA)
    world.call(
        "rita@uni.example", "POST", f"/api/v1/models/{repo.repo_id}/access-requests", json={}
    )
    run_scheduled(world.registry)
    world.deliver()
    assert world.subjects("head@hosp.org") == ["[RoentGen Registry] 1 item waiting for your review"]
    digest = world.mail("head@hosp.org", "1 item waiting", "/admin/access-requests")
    assert "1  access requests" in body_of(digest)
    assert "credentialing" not in body_of(digest)  # not a queue they review
    assert world.subjects("head@other.org") == []  # nothing of theirs waits


def test_trainings_and_grants_warn_30_days_ahead_and_on_the_day_they_lapse(
    world, tiny_model_dir
) -> None:
    world.people.institution("hosp")
    repo = publish_folder(world.registry, "hosp/cxr-cr", tiny_model_dir, tier="contributor-review")
    now = world.clock
    rita = world.people.researcher("rita@uni.example")
    world.people.user("far@uni.example", training_until=now + dt.timedelta(days=90))
    world.people.grant(rita, repo.repo_id, expires_at=now + dt.timedelta(days=20, hours=1))
    # Rita's training (from ``researcher``) lasts a year: shorten it to 10 days.
    from registry.models import Training
    from registry.unit_of_work import unit_of_work

    with unit_of_work(world.registry.sessions) as db:
        training = db.query(Training).filter_by(user_id=rita).one()
        training.valid_until = now + dt.timedelta(days=10)
    run_scheduled(world.registry)
    world.deliver()
    world.mail("rita@uni.example", "Your citi-dsor training expires on", "/account/trainings")
    world.mail(
        "rita@uni.example", f"Your access to {repo.repo_id} expires on",
        f"/models/{repo.repo_id}/request-access",
    )  # fmt: skip
    assert world.subjects("far@uni.example") == []

    world.clock = now + dt.timedelta(days=10, minutes=5)
    run_scheduled(world.registry)
    run_scheduled(world.registry)
    world.deliver()
    lapsed = world.mail("rita@uni.example", "Your citi-dsor training expired", "/account/trainings")
    assert "refused from now on" in body_of(lapsed)
    assert len(world.subjects("rita@uni.example")) == 3

    # The grant lapses on day 20: one mail that day, none again the day after.
    world.clock = now + dt.timedelta(days=20, hours=2)
    run_scheduled(world.registry)
    world.deliver()
    ended = world.mail(
        "rita@uni.example", f"Your access to {repo.repo_id} expired",
        f"/models/{repo.repo_id}/request-access",
    )  # fmt: skip
    assert "refused from now on" in body_of(ended)
    world.clock += dt.timedelta(days=1)
    run_scheduled(world.registry)
    assert deliver_due(world.registry).sent == 0
    assert len(world.subjects("rita@uni.example")) == 4
    assert world.subjects("far@uni.example") == []


def test_a_withdrawal_reaches_every_downloader_once_and_a_publication_its_publisher(
    world, client, tiny_model_dir
) -> None:
    world.person("root@registry.example", admin=True)
    world.person("pub@hosp.org", institution="hosp", role="publisher")
    upload = UploadApi(world.tokens["pub@hosp.org"], client=client)
    committed = upload.publish("hosp/cxr", folder_files(tiny_model_dir), tier="registered")
    assert committed.status == 200 and committed.body["state"] == "in-review", committed.body
    version = committed.body["version"]["id"]
    world.deliver()
    world.mail("root@registry.example", "New model version waiting", "/admin/reviews")
    published = world.call(
        "root@registry.example", "POST", f"/api/v1/models/hosp/cxr/versions/{version}/publish"
    )
    world.deliver()
    world.mail(
        "pub@hosp.org",
        f"hosp/cxr version {published['commit'][:12]} is published",
        "/models/hosp/cxr",
    )

    for who in ("ada@uni.example", "li@uni.example"):
        world.person(who)
        for _ in range(2):  # two downloads: still one mail
            got = client.get(
                "/hosp/cxr/resolve/main/model_index.json",
                headers={"Authorization": f"Bearer {world.tokens[who]}"},
            )
            assert got.status_code == 200
    world.person("never@uni.example")
    world.call(
        "pub@hosp.org", "POST", f"/api/v1/models/hosp/cxr/versions/{version}/withdraw",
        json={"reason": "Trained on images that were not de-identified."},
    )  # fmt: skip
    world.deliver()
    for who in ("ada@uni.example", "li@uni.example"):
        mail = world.mail(who, "was withdrawn", "/models/hosp/cxr")
        assert "not de-identified" in body_of(mail)
    assert world.subjects("never@uni.example") == []


def test_settings_decide_what_arrives_and_unverified_addresses_get_none(world) -> None:
    world.person("root@registry.example", admin=True)
    world.person("quiet@uni.example")
    settings = world.call(
        "quiet@uni.example", "PUT", "/api/v1/me/notifications", json={"decisions": False}
    )
    assert settings["settings"]["decisions"] is False
    refused = world.api(
        "PUT", "/api/v1/me/notifications", token=world.tokens["quiet@uni.example"],
        json={"reviews": "hourly", "sms": True},
    )  # fmt: skip
    assert refused.status_code == 422
    world.person("typed@uni.example", email_verified=False)
    for who in ("quiet@uni.example", "typed@uni.example"):
        application = world.call(who, "POST", "/api/v1/credentials", json=APPLICATION)
        world.call(
            "root@registry.example", "POST", f"/api/v1/credentials/{application['id']}/decision",
            json={"decision": "reject", "reason": "No."},
        )  # fmt: skip
    world.deliver()
    assert world.subjects("quiet@uni.example") == []
    assert world.subjects("typed@uni.example") == []
