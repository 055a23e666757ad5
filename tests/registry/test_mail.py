"""Mail as a real component: a durable outbox, a worker that delivers it over SMTP (a real
server on loopback) or as .eml files, retries with backoff, and admins who can see it all."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from registry import background
from registry.mail import worker
from registry.mail.outbox import enqueue_mail
from registry.mail.site import Site
from registry.mail.worker import deliver_due
from registry.models import OutboxMessage
from registry.unit_of_work import unit_of_work
from tests.conftest import make_settings
from tests.fixtures.mail import SmtpServer, body_of, eml_files
from tests.fixtures.principals import PASSWORD, Api
from tests.fixtures.tls import self_signed

pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def smtp_down() -> SmtpServer:
    """A mail server that is not running yet (its port is free): start() brings it up."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_down: SmtpServer):
    return make_settings(
        database_url,
        tmp_path,
        public_url="http://127.0.0.1",
        smtp_url=smtp_down.url,
        mail_from="Registry <registry@hosp.example>",
    )


def _queue(registry, to: str, n: int = 1) -> None:
    with unit_of_work(registry.sessions) as db:
        for i in range(n):
            enqueue_mail(
                db, Site.of(registry.settings), to=to, subject=f"Hello {i}", text="Body",
                topic="test", now=registry.now(),
            )  # fmt: skip


def _rows(registry) -> list[OutboxMessage]:
    with unit_of_work(registry.sessions) as db:
        return list(db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _later(registry, seconds: float) -> None:
    start = registry.now()
    registry.clock = lambda: start + dt.timedelta(seconds=seconds)


def test_without_an_smtp_url_mail_becomes_eml_files_and_the_log_says_so(
    database_url, tmp_path, caplog
) -> None:
    from registry.app import create_app
    from registry.mail import transport

    transport._announced.clear()
    app = create_app(settings=make_settings(database_url, tmp_path, public_url="http://127.0.0.1"))
    registry = app.extensions["registry"]
    outbox = registry.settings.instance_path / "outbox"
    with caplog.at_level(logging.WARNING, logger="registry.mail.transport"):
        background.start(registry, tasks=[]).stop()  # what serve starts: said before any mail
    assert "REGISTRY_SMTP_URL is not set" in caplog.text and str(outbox) in caplog.text
    _queue(registry, "ada@example.org")
    assert deliver_due(registry).sent == 1
    [mail] = eml_files(registry.settings.instance_path)
    assert mail["To"] == "ada@example.org" and mail["Subject"] == "[RoentGen Registry] Hello 0"
    assert "RoentGen Registry, http://127.0.0.1" in body_of(mail)
    assert not list(outbox.glob("*.part"))
    registry.engine.dispose()


def test_smtp_down_then_back_loses_nothing_and_sends_nothing_twice(
    client, registry, smtp_down: SmtpServer
) -> None:
    _later(registry, 0)  # a fixed clock
    started = time.monotonic()
    body = {"email": "ada@example.org", "password": PASSWORD, "accept_terms": True}
    assert Api(client)("POST", "/api/v1/register", json=body).status_code == 201
    assert time.monotonic() - started < 5  # the request never waits for the mail server

    first = deliver_due(registry)
    assert (first.sent, first.retrying) == (0, 1)
    [row] = _rows(registry)
    assert row.status == "queued" and row.attempts == 1
    assert "cannot reach the mail server smtp://127.0.0.1" in row.last_error
    assert row.next_attempt_at == registry.now() + worker.BACKOFF[0]
    assert deliver_due(registry).retrying == 0  # not due yet: nothing is tried

    smtp_down.start()
    _later(registry, 30)
    assert deliver_due(registry).sent == 1
    assert deliver_due(registry).sent == 0
    [mail] = smtp_down.to("ada@example.org")
    assert mail["From"] == "Registry <registry@hosp.example>"
    assert mail["Message-ID"].startswith(f"<outbox-{row.id}.")
    [row] = _rows(registry)
    assert row.status == "sent" and row.attempts == 2 and row.last_error == ""


def test_failures_back_off_until_failed_and_an_admin_sees_and_retries_them(
    client, registry, people, smtp_down: SmtpServer
) -> None:
    admin = people.token(people.user("root@example.org", admin=True))
    _queue(registry, "ada@example.org")
    waited = 0.0
    for attempt in range(1, worker.MAX_ATTEMPTS + 1):
        _later(registry, 0)  # a fixed clock for this attempt
        report = deliver_due(registry)
        [row] = _rows(registry)
        assert row.attempts == attempt
        if attempt < worker.MAX_ATTEMPTS:
            assert report.retrying == 1 and row.status == "queued"
            assert row.next_attempt_at == registry.now() + worker.backoff(attempt)
            waited += worker.backoff(attempt).total_seconds()
            _later(registry, worker.backoff(attempt).total_seconds())
    assert report.failed == 1 and row.status == "failed"
    assert waited > 12 * 3600  # retried for more than half a day before giving up

    listing = Api(client)("GET", "/api/v1/outbox?status=failed", token=admin)
    assert listing.status_code == 200
    assert listing.json["counts"]["failed"] == 1
    [shown] = listing.json["messages"]
    assert shown["recipient"] == "ada@example.org" and "cannot reach" in shown["last_error"]
    assert "body" not in shown  # mail bodies stay hidden, even from admins
    page = client.get("/admin/outbox", headers={"Authorization": f"Bearer {admin}"})
    assert "ada@example.org" in page.get_data(as_text=True)

    smtp_down.start()
    retried = Api(client)("POST", f"/api/v1/outbox/{row.id}/retry", token=admin)
    assert retried.status_code == 200 and retried.json["status"] == "queued"
    assert deliver_due(registry).sent == 1
    assert len(smtp_down.to("ada@example.org")) == 1
    again = Api(client)("POST", f"/api/v1/outbox/{row.id}/retry", token=admin)
    assert again.status_code == 409


def test_a_permanent_refusal_fails_at_once(
    registry, settings, smtp_down: SmtpServer, monkeypatch
) -> None:
    from registry.cli import main

    smtp_down.refuse.add("gone@example.org")
    smtp_down.start()
    _queue(registry, "gone@example.org")
    _queue(registry, "ada@example.org")
    report = deliver_due(registry)
    assert (report.sent, report.failed) == (1, 1)
    failed = [r for r in _rows(registry) if r.status == "failed"]
    assert [r.recipient for r in failed] == ["gone@example.org"]
    assert "550" in failed[0].last_error
    monkeypatch.setenv("REGISTRY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REGISTRY_INSTANCE_PATH", str(settings.instance_path))
    listed = CliRunner().invoke(main, ["mail", "status", "--failed"])
    assert listed.exit_code == 0, listed.output
    assert "1 sent, 1 failed" in listed.output
    assert f"#{failed[0].id} mail test to gone@example.org:" in listed.output
    assert "550" in listed.output


def test_two_workers_at_once_send_each_mail_exactly_once(registry, smtp_down: SmtpServer) -> None:
    smtp_down.start()
    _queue(registry, "ada@example.org", n=12)
    reports = []

    def work() -> None:
        reports.append(deliver_due(registry, limit=12))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    subjects = sorted(str(m["Subject"]) for m in smtp_down.to("ada@example.org"))
    assert subjects == sorted(f"[RoentGen Registry] Hello {i}" for i in range(12))
    assert sum(r.sent for r in reports) == 12


def test_a_crashed_workers_claim_lapses_and_the_mail_still_goes(
    registry, smtp_down: SmtpServer
) -> None:
    smtp_down.start()
    _queue(registry, "ada@example.org")
    claimed = worker._claim(registry.sessions, registry.now(), 10)  # then the worker "dies"
    assert len(claimed) == 1
    assert deliver_due(registry).sent == 0  # still leased
    _later(registry, worker.LEASE.total_seconds() + 1)
    assert deliver_due(registry).sent == 1
    assert len(smtp_down.to("ada@example.org")) == 1


def _cli_environment(settings, monkeypatch) -> None:
    """What ``registry-server`` reads to reach this test's database, instance and SMTP."""
    for name, value in (
        ("REGISTRY_DATABASE_URL", settings.database_url),
        ("REGISTRY_INSTANCE_PATH", str(settings.instance_path)),
        ("REGISTRY_SECRET_KEY", settings.secret_key),
        ("REGISTRY_SMTP_URL", settings.smtp_url),
    ):
        monkeypatch.setenv(name, value)


def test_mail_run_and_status_commands(registry, settings, smtp_down, monkeypatch) -> None:
    from registry.cli import main

    smtp_down.start()
    _queue(registry, "ada@example.org", n=2)
    _cli_environment(settings, monkeypatch)
    ran = CliRunner().invoke(main, ["mail", "run", "--once"])
    assert ran.exit_code == 0, ran.output
    assert "2 sent" in ran.output
    assert len(smtp_down.to("ada@example.org")) == 2
    status = CliRunner().invoke(main, ["mail", "status"])
    assert status.exit_code == 0 and "0 queued, 0 sending, 2 sent, 0 failed" in status.output


def test_serve_drains_the_outbox_in_the_background(registry, smtp_down) -> None:
    smtp_down.start()
    _queue(registry, "ada@example.org")
    runner = background.start(registry)  # the tasks every serve process runs
    try:
        deadline = time.monotonic() + 15
        while not smtp_down.to("ada@example.org") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        runner.stop()
    assert len(smtp_down.to("ada@example.org")) == 1


def test_registry_server_serve_mails_a_registration_without_a_worker(
    start_server, smtp_down: SmtpServer
) -> None:
    """The real ``registry-server serve`` (gunicorn) drains the outbox by itself."""
    import requests

    smtp_down.start()
    server = start_server(REGISTRY_SMTP_URL=smtp_down.url)
    body = {"email": "ada@example.org", "password": PASSWORD, "accept_terms": True}
    made = requests.post(f"{server.url}/api/v1/register", json=body, timeout=30)
    assert made.status_code == 201, made.text
    deadline = time.monotonic() + 30
    while not smtp_down.to("ada@example.org") and time.monotonic() < deadline:
        time.sleep(0.2)
    [mail] = smtp_down.to("ada@example.org")
    assert "Verify your email address" in mail["Subject"]
    assert "/account/verify/" in body_of(mail)


@pytest.mark.parametrize("mode", ["smtps", "starttls"])
def test_tls_and_login_as_in_smtps_user_pass_at_host(
    database_url, tmp_path, monkeypatch, mode
) -> None:
    """``smtps://user:pass@host:port`` (TLS from the start) and ``smtp://...?starttls=true``
    against a real TLS mail server on loopback that insists on the login."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from registry.app import create_app
    from tests.conftest import free_port
    from tests.fixtures.mail import _Collect

    cert, key = self_signed(tmp_path, "127.0.0.1")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the registry trusts the test's CA only
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, data) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        # handled=False: aiosmtpd answers the refusal itself (535).
        ok = (data.login, data.password) == (b"reg", b"p@ss word")
        return AuthResult(success=ok, handled=False)

    box = SmtpServer()
    port = free_port()
    options = {"ssl_context": tls} if mode == "smtps" else {"tls_context": tls}
    controller = Controller(
        _Collect(box), hostname="127.0.0.1", port=port, authenticator=authenticator,
        # aiosmtpd counts only STARTTLS as TLS for AUTH: with TLS from the start, allow it.
        auth_require_tls=mode == "starttls", require_starttls=mode == "starttls", **options,
    )  # fmt: skip
    controller.start()
    try:
        tail = "" if mode == "smtps" else "?starttls=true"
        scheme = "smtps" if mode == "smtps" else "smtp"
        for password, sent in (("wrong", 0), ("p%40ss%20word", 1)):
            url = f"{scheme}://reg:{password}@127.0.0.1:{port}{tail}"
            settings = make_settings(database_url, tmp_path, smtp_url=url)
            app = create_app(settings=settings)
            registry = app.extensions["registry"]
            _queue(registry, "ada@example.org")
            report = deliver_due(registry)
            assert report.sent == sent, report
            if not sent:
                [row] = _rows(registry)
                assert "refused the login" in row.last_error and "reg:" not in row.last_error
                with unit_of_work(registry.sessions) as db:
                    db.query(OutboxMessage).delete()
            registry.engine.dispose()
    finally:
        controller.stop()
    assert logins[-1] == (b"reg", b"p@ss word")  # the URL's escapes are undone
    [mail] = box.to("ada@example.org")
    assert mail["Subject"] == "[RoentGen Registry] Hello 0"


def test_a_slow_mail_server_does_not_hold_the_background_thread(
    registry, smtp_down: SmtpServer
) -> None:
    """A batch stops starting mails after its time budget and gives the rest back untried
    (a server shutting down then leaves nothing claimed to be resent after the lease)."""
    smtp_down.delay = 0.4
    smtp_down.start()
    mails = 12  # 4.8 s of sending at 0.4 s each, against a budget of 1 s
    _queue(registry, "ada@example.org", n=mails)
    started = time.monotonic()
    first = deliver_due(registry, budget=1.0)
    # The budget, the mail under way when it ran out and a loaded machine's slack; far
    # below what sending them all would take.
    assert time.monotonic() - started < 3.5
    assert first.sent < mails and first.sent + first.released == mails, first
    assert {r.status for r in _rows(registry)} <= {"sent", "queued"}  # nothing left claimed
    while deliver_due(registry, budget=1.0).released:
        pass
    subjects = sorted(str(m["Subject"]) for m in smtp_down.to("ada@example.org"))
    assert subjects == sorted(f"[RoentGen Registry] Hello {i}" for i in range(mails))
    assert all(r.status == "sent" and r.attempts == 1 for r in _rows(registry))


def test_mail_run_once_delivers_everything_that_is_due(
    registry, settings, smtp_down, monkeypatch
) -> None:
    """``--once`` (for cron) empties the due outbox, not just one batch of it."""
    from registry.cli import main

    smtp_down.start()
    _queue(registry, "ada@example.org", n=worker.BATCH * 2 + 5)
    _cli_environment(settings, monkeypatch)
    ran = CliRunner().invoke(main, ["mail", "run", "--once"])
    assert ran.exit_code == 0, ran.output
    assert f"{worker.BATCH * 2 + 5} sent" in ran.output
    assert len(smtp_down.to("ada@example.org")) == worker.BATCH * 2 + 5


def test_the_background_task_delivers_a_backlog_in_one_tick(
    registry, smtp_down: SmtpServer
) -> None:
    """A withdrawal to many downloaders: one tick sends batch after batch, within budget."""
    smtp_down.start()
    _queue(registry, "ada@example.org", n=worker.BATCH * 3 + 1)
    report = worker.deliver_backlog(registry)
    assert report.sent == worker.BATCH * 3 + 1
    assert len(smtp_down.to("ada@example.org")) == worker.BATCH * 3 + 1
    smtp_down.delay = 0.3
    _queue(registry, "li@example.org", n=worker.BATCH * 2)
    started = time.monotonic()
    slow = worker.deliver_backlog(registry, budget=1.0)
    assert time.monotonic() - started < 4 and 0 < slow.sent < worker.BATCH


def test_with_the_mail_server_down_a_drain_stops_after_one_batch(
    registry, smtp_down: SmtpServer
) -> None:
    """``mail run --once`` against a server that is down tries it once, not once per batch."""
    _queue(registry, "ada@example.org", n=worker.BATCH * 3)
    report = worker.drain(registry)
    assert (report.sent, report.retrying) == (0, worker.BATCH)
    assert sum(r.attempts for r in _rows(registry)) == worker.BATCH
