"""Accessible basics in a real browser: pages fit a phone, every input has a label, and the
login form works from the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.pages import log_in

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && !el.closest('[hidden]'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _check(page, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(path)
    assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways on a phone"
    assert page.evaluate(UNLABELLED) == [], f"{path} has inputs without labels"


def test_pages_fit_a_phone_and_label_every_input(
    browser, live_server, make_account, admin_account, open_model, gated_model
):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    for path in ("/", "/models/demo/tiny", "/models/demo/gated", "/login", "/register", "/terms"):
        _check(page, path)

    publisher = make_account("pub@demo.example", institution="demo")
    log_in(page, publisher.email, publisher.password)
    for path in (
        "/account",
        "/account/credentials",
        "/account/trainings",
        "/duas/physionet-credentialed-1.5.0",
        "/account/tokens",
        "/account/access-requests",
        "/publish",
        "/publish/upload",
    ):
        _check(page, path)
    context.close()

    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    page = context.new_page()
    log_in(page, admin_account.email, admin_account.password)
    for path in ("/admin/credentials", "/admin/users", "/admin/institutions", "/admin/audit"):
        _check(page, path)
    context.close()


def test_login_works_from_the_keyboard(page, make_account):
    account = make_account("keys@example.org")
    page.goto("/login")
    page.keyboard.press("Tab")  # skip link first
    expect(page.locator(".skip-link")).to_be_focused()
    page.get_by_label("Email").focus()
    page.keyboard.type(account.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
