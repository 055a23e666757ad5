"""Phone and confirmations (issue 18): tables turn into labelled cards instead of cutting
columns off; withdrawing a version and granting admin rights ask first. Real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.web.pages import log_in

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}


def _context(browser, live_server, answers: list[bool], seen: list[str], **options):  # type: ignore[no-untyped-def]
    """A browser context whose confirmation dialogs are answered from ``answers`` in turn."""
    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()

    def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        seen.append(dialog.message)
        dialog.accept() if answers.pop(0) else dialog.dismiss()

    page.on("dialog", answer)
    return context, page


def _state(registry, version_id: int) -> str:  # type: ignore[no-untyped-def]
    from registry.models import Version

    with registry.sessions() as db:
        return db.scalar(select(Version.state).where(Version.id == version_id))


def test_withdrawing_asks_first_and_cancel_changes_nothing(
    browser, live_server, registry, make_account, open_model
):
    from registry.models import Version

    with registry.sessions() as db:
        version_id = db.scalar(select(Version.id).where(Version.commit == open_model.commit))
    publisher = make_account("pub@demo.example", institution="demo")
    seen: list[str] = []
    context, page = _context(browser, live_server, [False, True], seen, viewport=PHONE)
    log_in(page, publisher.email, publisher.password)
    page.goto(f"/versions/{version_id}/withdraw")
    page.get_by_label("Reason").fill("Label leak")
    page.get_by_role("button", name="Withdraw version").click()
    expect(page.get_by_label("Reason")).to_have_value("Label leak")  # still on the form
    assert len(seen) == 1 and "cannot be undone" in seen[0]
    assert _state(registry, version_id) == "published"
    page.get_by_role("button", name="Withdraw version").click()
    expect(page.get_by_text("is withdrawn; downloads stopped")).to_be_visible()
    assert _state(registry, version_id) == "withdrawn"
    context.close()


def test_granting_admin_rights_asks_first(
    browser, live_server, registry, make_account, admin_account
):
    from registry.models import User

    make_account("newbie@example.org")
    make_account("staff@demo.example", institution="demo")  # the institution exists
    seen: list[str] = []
    context, page = _context(browser, live_server, [False, False], seen)
    log_in(page, admin_account.email, admin_account.password)
    page.goto("/admin/users?q=newbie")
    row = page.locator("tr[data-user='newbie@example.org']")
    row.get_by_label("registry admin").check()
    row.get_by_role("button", name="Save").nth(1).click()
    expect(page.locator("#queue-summary")).to_be_visible()
    assert len(seen) == 1 and "Make newbie@example.org a registry admin?" in seen[0]
    with registry.sessions() as db:
        newbie = db.scalar(select(User).where(User.email == "newbie@example.org"))
        assert newbie.is_registry_admin is False
    # Making someone an institution admin asks too.
    page.goto("/admin/users?q=newbie")
    row.get_by_label("Institution of newbie@example.org").select_option(label="DEMO")
    row.get_by_label("Role of newbie@example.org").select_option("institution-admin")
    row.get_by_role("button", name="Save").first.click()
    expect(page.locator("#queue-summary")).to_be_visible()
    assert len(seen) == 2 and "an institution admin?" in seen[1]
    with registry.sessions() as db:
        newbie = db.scalar(select(User).where(User.email == "newbie@example.org"))
        assert newbie.membership is None
    # Saving without granting anything asks nothing.
    page.goto("/admin/users?q=newbie")
    row.get_by_role("button", name="Save").nth(1).click()
    expect(page.get_by_text("Saved newbie@example.org.")).to_be_visible()
    assert len(seen) == 2
    context.close()


def test_phone_tables_become_labelled_cards(browser, live_server, open_model):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    page.goto("/models/demo/tiny")
    cell = page.locator("table.data.cards td[data-label='Path']").first
    expect(cell).to_be_visible()
    assert cell.evaluate("el => getComputedStyle(el, '::before').content") == '"Path"'
    assert cell.evaluate("el => getComputedStyle(el).display") == "block"
    # Every column is still there, each under its label (none silently cut off).
    sizes = page.locator("table.data.cards td[data-label='Size']")
    expect(sizes.first).to_be_visible()
    # A path wraps after a "/", not in the middle of a name.
    assert "<wbr>" in page.locator("td.path").nth(3).inner_html()
    context.close()
