"""Web UI fixtures: SQLite only, a real headless Chromium, and pages on a live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry.unit_of_work import unit_of_work

CHROMIUM = os.environ.get("REGISTRY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The web tests run on SQLite only: they test pages, not database engines."""
    from registry.db import Base, make_engine
    from registry.models import AuditHead

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(AuditHead.__table__.insert().values(id=1, seq=0, hash="0" * 64))
    engine.dispose()
    yield url


def launch_chromium(playwright):  # type: ignore[no-untyped-def]
    """Headless Debian Chromium (never a downloaded browser build)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium for the test session."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # make test installs Chromium: a missing one is a failure
            pytest.fail(f"{CHROMIUM} not found although make test installs it")
        pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class PageEvents:
    """What the page did that a user would not see: dialogs and script errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def page_events() -> PageEvents:
    return PageEvents()


@pytest.fixture
def page(browser, live_server, page_events: PageEvents) -> Iterator:
    """A fresh browser context (no cookies) on the live server, phone-to-desktop safe."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        page_events.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda error: page_events.errors.append(str(error)))
    tab.on(
        "console",
        lambda msg: page_events.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    yield tab
    context.close()


@pytest.fixture
def new_page(browser, live_server) -> Iterator:
    """Open further independent browser sessions (a second user) within one test."""
    contexts = []

    def open_page():  # type: ignore[no-untyped-def]
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    display_name: str


@pytest.fixture
def make_account(registry):  # type: ignore[no-untyped-def]
    """Create a user through the accounts services (optionally admin or institution staff)."""
    from registry.accounts import institutions, services
    from registry.errors import NotFound

    def make(
        email: str,
        *,
        display_name: str = "",
        password: str = "correct-horse-battery",
        admin: bool = False,
        institution: str | None = None,
        role: str = "publisher",
        email_verified: bool = True,
    ) -> Account:
        from registry.accounts.verification import mark_verified

        with unit_of_work(registry.sessions) as db:
            user = services.register_user(
                db,
                email=email,
                password=password,
                display_name=display_name,
                accept_terms=True,
                now=registry.now(),
                is_registry_admin=admin,
            )
            if email_verified:  # as if the mailed link had been opened
                mark_verified(db, user, actor=None, now=registry.now())
            if institution is not None:
                try:
                    place = institutions.get_institution(db, institution)
                except NotFound:
                    place = institutions.create_institution(
                        db,
                        slug=institution,
                        name=institution.upper(),
                        actor=user,
                        now=registry.now(),
                    )
                institutions.set_membership(
                    db, place, user, role=role, actor=user, now=registry.now()
                )
            return Account(email, password, user.display_name)

    return make


@pytest.fixture
def admin_account(make_account) -> Account:  # type: ignore[no-untyped-def]
    return make_account("admin@registry.example", display_name="Registry Admin", admin=True)
