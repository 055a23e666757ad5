"""What a user does in the browser, step by step (shared by the end-to-end tests)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def register(page: Page, email: str, password: str, display_name: str) -> None:
    page.goto("/register")
    page.get_by_label("Display name").fill(display_name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name=display_name)).to_be_visible()


def access_box(page: Page):  # type: ignore[no-untyped-def]
    return page.locator(".access-box")
