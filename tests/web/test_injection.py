"""User-controlled text (model cards, display names, request answers) renders inert: in a
real browser no dialog opens and no injected script runs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.repos import publish_folder
from tests.web.pages import log_in, register

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__pwned = 1; alert('script')</script>"
HANDLER = '<img src="x" onerror="window.__pwned = 2; alert(\'onerror\')">'
SVG = "<svg onload=\"alert('svg')\"></svg>"
EVIL_CARD = f"""---
license: apache-2.0
base_model: "{SCRIPT}"
datasets: [synthetic-phantoms]
access_tier: open
dua: none
intended_use: "{HANDLER.replace('"', "'")}"
out_of_scope_use: Any clinical use.
limitations: Tiny.
training_data: None.
evaluation: None.
tags: [demo, "{SVG.replace('"', "'")}"]
---
# Evil card {SCRIPT}

Raw HTML: {HANDLER} and {SVG}

[markdown link](javascript:alert('md-link')) and <a href="javascript:alert('a')">raw link</a>

<iframe src="javascript:alert('iframe')"></iframe>

![image](javascript:alert('img'))
"""

INERT_CHECK = """() => ({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  inlineScripts: [...document.scripts].filter(s => !s.src).length,
  handlers: [...document.querySelectorAll('*')].filter(
    el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
  jsLinks: [...document.querySelectorAll('[href], [src]')].filter(
    el => /^\\s*javascript:/i.test(el.getAttribute('href') || el.getAttribute('src') || '')).length,
  iframes: document.querySelectorAll('iframe, svg, object, embed').length,
})"""


def _assert_inert(page, page_events) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(300)  # let any would-be handler (img onerror) fire
    assert page.evaluate(INERT_CHECK) == {
        "pwned": None,
        "inlineScripts": 0,
        "handlers": 0,
        "jsLinks": 0,
        "iframes": 0,
    }
    assert page_events.dialogs == []


def test_model_card_with_scripts_handlers_and_javascript_links_is_inert(
    page, page_events, registry, model_copy
):
    (model_copy / "README.md").write_text(EVIL_CARD, encoding="utf-8")
    publish_folder(registry, "demo/evil", model_copy, tier="open")

    page.goto("/models/demo/evil")
    card = page.locator(".card-body")
    # The card's "#" heading sits under the page's "Model card" (h2).
    expect(card.get_by_role("heading", level=3)).to_contain_text("Evil card <script>")
    expect(card).to_contain_text("Raw HTML: <img")
    # Links with javascript: URLs are left as text, not made clickable.
    expect(card.get_by_role("link")).to_have_count(0)
    # Front-matter values are shown as text in the table.
    expect(page.locator("table.kv")).to_contain_text("window.__pwned = 1")
    _assert_inert(page, page_events)

    page.goto("/?tag=" + SVG.replace('"', "'"))
    _assert_inert(page, page_events)


def test_display_name_with_markup_is_shown_as_text(page, new_page, page_events, admin_account):
    evil_name = f"Mallory {SCRIPT}{HANDLER}"[:200]
    register(page, "mallory@example.org", "correct-horse-battery", evil_name)
    expect(page.locator(".user-chip")).to_have_text(evil_name)
    _assert_inert(page, page_events)

    # Her application and its answers reach an admin's queue, still as text.
    page.goto("/account/credentials")
    page.get_by_label("Full legal name").fill(HANDLER)
    page.get_by_label("Organisation").fill(SVG)
    page.get_by_label("Reference name").fill("Ref")
    page.get_by_label("Reference email").fill("ref@example.org")
    page.get_by_label("Research summary").fill(f"[x](javascript:alert(1)) {SCRIPT}")
    page.get_by_role("button", name="Submit application").click()
    expect(page.get_by_text("Your application was submitted")).to_be_visible()

    admin = new_page()
    admin_dialogs: list[str] = []
    admin.on("dialog", lambda d: (admin_dialogs.append(d.message), d.dismiss()))
    log_in(admin, admin_account.email, admin_account.password)
    admin.goto("/admin/credentials")
    expect(admin.locator(".queue-item")).to_contain_text("window.__pwned = 1")
    admin.goto("/admin/users")
    expect(admin.locator("tbody")).to_contain_text(evil_name)
    admin.goto("/admin/audit")
    admin.wait_for_timeout(300)
    assert admin.evaluate(INERT_CHECK)["pwned"] is None
    assert admin_dialogs == []
