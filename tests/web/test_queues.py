"""Admin queues at scale (issue 18): 60 waiting applications page, filter, sort, are
bulk-accepted 20 at a time and decided in place, in real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.queues import application_statuses, make_applications
from tests.web.pages import log_in

pytestmark = pytest.mark.browser

# The first item whose top is inside the viewport, and whether an item is (partly) visible.
VISIBLE_ITEM = """() => {
  const item = [...document.querySelectorAll('article[data-item]')]
    .find((node) => node.getBoundingClientRect().top >= 0);
  return item ? item.dataset.item : null;
}"""
IS_VISIBLE = """(id) => {
  const box = document.querySelector(`article[data-item="${id}"]`).getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight;
}"""


def test_sixty_applications_page_filter_bulk_accept_and_stay_in_place(
    page, page_events, registry, admin_account
):
    make_applications(registry)
    log_in(page, admin_account.email, admin_account.password)
    page.goto("/admin/credentials")
    count = page.locator('[data-count-for="credentials"] [data-count]')
    expect(count).to_have_text("60")
    expect(page.locator("#queue-summary")).to_contain_text("Showing 1–25 of 60")
    items = page.locator("article[data-item]")
    expect(items).to_have_count(25)
    expect(items.first).to_contain_text("Applicant 00")  # the one waiting longest comes first

    page.get_by_role("link", name="Next").click()
    expect(page.locator("#queue-summary")).to_contain_text("Showing 26–50 of 60")
    expect(items.first).to_contain_text("Applicant 25")

    page.get_by_label("Order").select_option("newest")
    page.get_by_label("Find").fill("north")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#queue-summary")).to_contain_text("Showing 1–20 of 20")
    expect(items.first).to_contain_text("Applicant 57")

    # Scrolled half way down, the admin selects the twenty and accepts them at once.
    page.evaluate("window.scrollTo(0, 1500); window.__samePage = true")
    in_view = page.evaluate(VISIBLE_ITEM)
    assert in_view is not None
    page.get_by_label("Select all on this page").check()
    expect(page.locator("[data-selected-count]")).to_have_text("20 selected")
    page.get_by_role("button", name="Accept selected").click()
    expect(page.locator("#queue-status")).to_have_text("20 items accepted.")
    expect(page.locator("article[data-decided='accepted']")).to_have_count(20)
    expect(count).to_have_text("40")
    assert page.evaluate("window.__samePage") is True  # no reload
    # No jump: the item that was in view is still in view (the page got shorter above it).
    assert page.evaluate("window.scrollY") > 0
    assert page.evaluate(IS_VISIBLE, in_view) is True
    assert application_statuses(registry) == {"accepted": 20, "pending": 40}

    # One decision on its own is made in place as well; a rejection needs its reason.
    page.goto("/admin/credentials?page=2")
    page.evaluate("window.__samePage = true")
    first = items.first
    expect(first).to_contain_text("Applicant 38")  # the 26th still waiting
    first.get_by_label("Reason for rejecting").fill("Reference did not answer")
    first.get_by_role("button", name="Reject").click()
    expect(first.locator("[data-status]")).to_have_text("rejected")
    expect(count).to_have_text("39")
    assert page.evaluate("window.__samePage") is True
    assert application_statuses(registry) == {"accepted": 20, "pending": 39, "rejected": 1}

    # A bulk rejection without a reason is refused as a whole, with the reason why.
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Reject selected").click()
    expect(page.locator("#queue-status")).to_contain_text("Nothing was decided")
    assert application_statuses(registry) == {"accepted": 20, "pending": 39, "rejected": 1}
    assert page_events.errors == []
    # Chromium logs the refused request itself; nothing else went wrong on the page.
    assert [e for e in page_events.console_errors if "status of 422" not in e] == []


def test_without_the_script_a_decision_returns_to_the_same_page_and_item(
    app, client, registry, make_account
):
    import re

    from tests.web.test_security import log_in as http_log_in

    make_applications(registry, 30)
    token = http_log_in(client, make_account("root@example.org", admin=True))
    page = client.get("/admin/credentials?page=1&q=south").get_data(as_text=True)
    ids = re.findall(r'data-item="(\d+)"', page)
    assert len(ids) == 20
    response = client.post(
        f"/admin/credentials/{ids[3]}/decision",
        data={
            "csrf_token": token,
            "decision": "accept",
            "back": "/admin/credentials?page=1&q=south",
            "anchor": f"item-{ids[4]}",
        },
    )
    assert response.status_code == 302
    assert response.location.endswith(f"/admin/credentials?page=1&q=south#item-{ids[4]}")
    # A way back to another site is never followed.
    response = client.post(
        f"/admin/credentials/{ids[5]}/decision",
        data={"csrf_token": token, "decision": "accept", "back": "https://evil.example/"},
    )
    assert response.location.endswith("/admin/credentials")
    bulk = client.post(
        "/admin/credentials/decisions",
        data={"csrf_token": token, "decision": "accept", "ids": ids[6:9]},
    )
    assert bulk.status_code == 302
    assert application_statuses(registry) == {"accepted": 5, "pending": 25}
    # The users page pages too, instead of stopping silently at 200.
    users = client.get("/admin/users?per_page=10&page=2").get_data(as_text=True)
    assert "Showing 11–20 of 31" in users and "Page 2 of 4" in users


def test_version_reviews_are_published_together_in_place(
    app, page, page_events, registry, make_account, admin_account, tiny_model_dir
):
    from tests.web.test_admin import _submit_through_the_api

    publisher = make_account("pub@mgh.example", institution="mgh")
    for name in ("first", "second"):
        _submit_through_the_api(app, registry, publisher.email, tiny_model_dir, f"mgh/{name}")
    log_in(page, admin_account.email, admin_account.password)
    page.goto("/admin/reviews")
    page.evaluate("window.__samePage = true")
    expect(page.locator('[data-count-for="reviews"] [data-count]')).to_have_text("2")
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Publish selected").click()
    expect(page.locator("#queue-status")).to_have_text("2 items published.")
    expect(page.locator("tr[data-decided='published']")).to_have_count(2)
    expect(page.locator('[data-count-for="reviews"]')).to_be_hidden()
    assert page.evaluate("window.__samePage") is True
    page.goto("/models/mgh/second")
    expect(page.locator(".badge-published").first).to_be_visible()
    assert page_events.errors == []
