"""The identity, notification and webhook pages over HTTP (forms with CSRF, as a browser)."""

from __future__ import annotations

import hmac
import re

from registry.mail.worker import deliver_due
from tests.fixtures.mail import eml_files, link_in
from tests.fixtures.webhooks import expected_signature
from tests.web.test_security import csrf_token, log_in


def test_webhook_pages_create_show_the_secret_once_send_a_test_and_log_it(
    client, registry, make_account, receiver
) -> None:
    admin = make_account("root@registry.example", admin=True)
    make_account("head@hosp.org", institution="hosp", role="institution-admin")
    token = log_in(client, admin)
    form = {
        "csrf_token": token, "url": receiver.url, "institution": "hosp", "allow_private": "yes",
        "events": ["version.published", "version.withdrawn"],
    }  # fmt: skip
    created = client.post("/admin/webhooks", data=form)
    assert created.status_code == 201
    secret = re.search(r"<code>(whsec_[^<]+)</code>", created.get_data(as_text=True)).group(1)
    listing = client.get("/admin/webhooks").get_data(as_text=True)
    assert "/hooks/registry" in listing and secret not in listing  # the secret is shown once
    hook_id = int(re.search(r'data-webhook="(\d+)"', listing).group(1))
    assert (
        client.post(f"/admin/webhooks/{hook_id}/test", data={"csrf_token": token}).status_code
        == 302
    )
    deliver_due(registry)
    [(headers, body)] = receiver.requests
    assert hmac.compare_digest(
        headers["X-Registry-Signature-256"], expected_signature(secret, body)
    )
    detail = client.get(f"/admin/webhooks/{hook_id}").get_data(as_text=True)
    assert "<code>ping</code>" in detail and "HTTP 200" in detail
    bad = client.post(
        "/admin/webhooks", data={**form, "url": "http://10.1.2.3/x", "allow_private": ""}
    )
    assert bad.status_code == 422 and "a private address" in bad.get_data(as_text=True)
    deleted = client.post(f"/admin/webhooks/{hook_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302
    assert "deleted" in client.get(f"/admin/webhooks/{hook_id}").get_data(as_text=True)


def test_an_institution_admin_manages_only_their_institutions_hooks(client, make_account) -> None:
    head = make_account("head@hosp.org", institution="hosp", role="institution-admin")
    token = log_in(client, head)
    page = client.get("/admin/webhooks").get_data(as_text=True)
    assert 'name="institution" value="hosp"' in page  # no registry-wide choice for them
    refused = client.post(
        "/admin/webhooks",
        data={"csrf_token": token, "url": "https://hooks.example.org/x", "events": ["ping"]},
    )
    assert refused.status_code == 403


def test_notification_settings_page_saves_the_choices(client, make_account) -> None:
    account = make_account("rita@uni.example")
    token = log_in(client, account)
    page = client.get("/account/notifications").get_data(as_text=True)
    assert 'id="decisions"' in page and "checked" in page
    saved = client.post(
        "/account/notifications",
        data={"csrf_token": token, "expiry": "yes", "reviews": "digest"},
    )
    assert saved.status_code == 302
    page = client.get("/account/notifications").get_data(as_text=True)
    assert re.search(r'id="decisions" name="decisions" value="yes"\s*>', page)  # now off
    assert re.search(r'id="expiry" name="expiry" value="yes" checked', page)
    assert '<option value="digest" selected>' in page
    bad = client.post("/account/notifications", data={"csrf_token": token, "reviews": "hourly"})
    assert bad.status_code == 422


def test_forgot_password_page_mails_a_reset_link_from_the_default_eml_outbox(
    client, registry, make_account
) -> None:
    account = make_account("rita@uni.example")
    token = csrf_token(client, "/password/forgot")
    for email in (account.email, "nobody@uni.example"):
        sent = client.post("/password/forgot", data={"csrf_token": token, "email": email})
        assert sent.status_code == 200
        assert "If an account uses that address" in sent.get_data(as_text=True)
    deliver_due(registry)
    [mail] = [m for m in eml_files(registry.settings.instance_path) if m["To"] == account.email]
    link = link_in(mail, "/password/reset/")
    page = client.get(link).get_data(as_text=True)
    assert f"For {account.email}" in page
    done = client.post(link, data={"csrf_token": token, "new_password": "short"})
    assert done.status_code == 422 and "at least 10 characters" in done.get_data(as_text=True)


def test_the_outbox_page_is_for_registry_admins(client, make_account) -> None:
    log_in(client, make_account("rita@uni.example"))
    assert client.get("/admin/outbox").status_code == 403


def test_an_admin_sees_the_outbox_by_state_and_retries_a_failed_mail(
    client, registry, make_account
) -> None:
    from registry.mail.outbox import enqueue_mail
    from registry.mail.site import Site
    from registry.models import OutboxMessage
    from registry.unit_of_work import unit_of_work

    token = log_in(client, make_account("root@registry.example", admin=True))
    with unit_of_work(registry.sessions) as db:
        for to in ("ada@uni.example", "gone@uni.example"):
            enqueue_mail(
                db, Site.of(registry.settings), to=to, subject="Hello", text="Body",
                topic="test", now=registry.now(),
            )  # fmt: skip
        db.flush()
        gone = db.query(OutboxMessage).filter_by(recipient="gone@uni.example").one()
        gone.status, gone.attempts, gone.last_error = "failed", 9, "550 no such mailbox"
        gone_id = gone.id
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert re.search(r'data-count="queued">1 queued<', page)
    assert re.search(r'data-count="failed">1 failed<', page)
    failed = client.get("/admin/outbox?status=failed").get_data(as_text=True)
    assert "gone@uni.example" in failed and "550 no such mailbox" in failed
    assert "ada@uni.example" not in failed
    retried = client.post(f"/admin/outbox/{gone_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 302
    assert deliver_due(registry).sent == 2  # written as .eml files: no SMTP URL here
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert re.search(r'data-count="sent">2 sent<', page)
    assert re.search(r'data-count="failed">0 failed<', page)


def test_the_users_page_shows_who_is_unverified_and_refuses_them_a_role(
    client, registry, make_account
) -> None:
    from tests.fixtures.principals import People

    token = log_in(client, make_account("root@registry.example", admin=True))
    client.post("/admin/institutions", data={"csrf_token": token, "slug": "hosp", "name": "Hosp"})
    uid = People(registry).user("newhire@hosp.org", email_verified=False)
    page = client.get("/admin/users?q=newhire").get_data(as_text=True)
    assert 'data-email-verified="no"' in page and "address not verified" in page
    for url, form in (
        (f"/admin/users/{uid}/membership", {"institution": "hosp", "role": "publisher"}),
        (f"/admin/users/{uid}/flags", {"is_registry_admin": "yes", "is_active": "yes"}),
    ):
        refused = client.post(url, data={"csrf_token": token, **form}, follow_redirects=True)
        text = refused.get_data(as_text=True)
        assert "verify your email (no link sent to newhire@hosp.org yet" in text, url
    page = client.get("/admin/users?q=newhire").get_data(as_text=True)
    assert "registry admin</label>" in page and 'value="yes" checked> registry admin' not in page
    root = client.get("/admin/users?q=root").get_data(as_text=True)
    assert 'data-email-verified="yes"' in root
