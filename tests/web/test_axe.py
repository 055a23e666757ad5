"""axe-core over every page of the web UI, at desktop and phone width, as an anonymous
visitor, a researcher, a publisher and a registry admin (issue 18): no serious or critical
violations, and headings in order (axe's moderate ``heading-order`` too). axe-core is
vendored under tests/web/vendor (never served by the registry)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from playwright.sync_api import expect

from registry.unit_of_work import unit_of_work
from tests.web.pages import log_in
from tests.web.test_admin import _submit_through_the_api, reviewed_model  # noqa: F401

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 375, "height": 740}}
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical" || v.id === "heading-order")
    .map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes): ${v.help} — ` +
      v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "));
}"""

ANONYMOUS = ["/", "/models/demo/tiny", "/models/demo/gated", "/models/mgh/cxr-review", "/login",
             "/register", "/terms", "/password/forgot"]  # fmt: skip
RESEARCHER = ["/account", "/account/credentials", "/account/trainings", "/account/tokens",
              "/account/access-requests", "/account/notifications", "/account/password",
              "/account/email", "/account/verify", "/duas/physionet-credentialed-1.5.0",
              "/models/demo/gated", "/models/mgh/cxr-review/request-access"]  # fmt: skip
PUBLISHER = ["/publish", "/publish/upload", "/publish/versions/{version}"]
ADMIN = ["/admin/credentials", "/admin/trainings", "/admin/access-requests", "/admin/reviews",
         "/admin/reviews/{version}", "/admin/users", "/admin/institutions", "/admin/audit",
         "/admin/webhooks", "/admin/outbox", "/versions/{published}/withdraw",
         "/admin/credentials?status=all", "/admin/access-requests?status=all"]  # fmt: skip


def _waiting_items(registry, researcher: str) -> None:  # type: ignore[no-untyped-def]
    """A pending credential application, training and access request from ``researcher``."""
    from registry.access_requests import services as access_requests
    from registry.accounts import services
    from registry.credentials import applications, trainings
    from registry.repos import services as repos

    with unit_of_work(registry.sessions) as db:
        user = services.find_user_by_email(db, researcher)
        now = registry.now()
        applications.apply(
            db,
            user,
            {"full_name": "Rita Researcher", "affiliation": "General Hospital",
             "reference_name": "Dr Ref", "reference_email": "ref@hospital.example",
             "research_summary": "Synthetic chest X-rays to augment a classifier."},
            now=now,
        )  # fmt: skip
        trainings.submit(
            db, registry.blobs, user, registry.policy.training("citi-dsor"), kind="citi-dsor",
            completed_on=(dt.date.today() - dt.timedelta(days=5)).isoformat(),
            verification_url="https://www.citiprogram.org/verify/?k=a-very-long-key-1234567890",
            certificate=None, filename="", now=now,
        )  # fmt: skip
        model = repos.get_model(db, "mgh", "cxr-review")
        access_requests.create(
            db, user, model, registry.policy.tier(model.tier),
            {"purpose": "Augment a classifier", "no_reid": True}, now=now,
        )  # fmt: skip
        db.commit()


def _published_version_id(registry) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from registry.models import Model, Version

    with registry.sessions() as db:
        return db.scalar(
            select(Version.id).join(Model).where(Model.name == "tiny", Version.state == "published")
        )


def test_no_serious_accessibility_violations_on_any_page(
    app, browser, live_server, registry, make_account, admin_account, open_model, gated_model,
    reviewed_model, tiny_model_dir,  # noqa: F811
):  # fmt: skip
    researcher = make_account("rita@hospital.example", display_name="Rita Researcher")
    publisher = make_account("pub@mgh.example", display_name="Pat", institution="mgh")
    _waiting_items(registry, researcher.email)
    values = {
        "version": _submit_through_the_api(
            app, registry, publisher.email, tiny_model_dir, "mgh/cxr-axe"
        ),
        "published": _published_version_id(registry),
    }
    visits = [(None, ANONYMOUS), (researcher, RESEARCHER), (publisher, PUBLISHER),
              (admin_account, ADMIN)]  # fmt: skip
    problems: list[str] = []
    for size, viewport in SIZES.items():
        for account, paths in visits:
            context = browser.new_context(base_url=live_server.url, viewport=viewport)
            context.set_default_timeout(15_000)
            page = context.new_page()
            if account is not None:
                log_in(page, account.email, account.password)
            for template in paths:
                path = template.format(**values)
                response = page.goto(path)
                assert response is not None and response.status == 200, (path, response)
                if path.startswith("/publish/upload"):
                    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
                page.evaluate(AXE)
                problems += [f"{size} {path}: {line}" for line in page.evaluate(RUN_AXE)]
            context.close()
    assert problems == [], "\n".join(problems)
