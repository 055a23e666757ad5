"""The upload form never changes a model card's tier silently: a card whose access_tier
differs from the form's is a visible choice, and an open upload needs an explicit
confirmation. Real Chromium against a live server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.web.pages import log_in

pytestmark = pytest.mark.browser


def _card_says(folder, tier: str, datasets: str = "[synthetic-phantoms]") -> None:
    card = folder / "README.md"
    text = card.read_text().replace("access_tier: open", f"access_tier: {tier}")
    card.write_text(text.replace("datasets: [synthetic-phantoms]", f"datasets: {datasets}"))


def test_a_card_tier_that_differs_from_the_form_is_a_visible_choice(
    page, make_account, model_copy, registry
):
    _card_says(model_copy, "contributor-review")
    publisher = make_account("pub@mgh.example", institution="mgh")
    log_in(page, publisher.email, publisher.password)
    page.goto("/publish/upload")
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
    page.get_by_label("Model name").fill("cxr-cr")
    page.get_by_label("Access tier", exact=True).select_option("open")
    page.set_input_files("#folder", str(model_copy))
    expect(page.get_by_label("Licence")).to_have_value("apache-2.0")

    choice = page.locator("#tier-choice")
    expect(choice).to_be_visible()
    expect(choice).to_contain_text("access_tier: contributor-review")
    expect(choice).to_contain_text("open tier")
    page.get_by_role("button", name="Upload and publish").click()
    expect(page.locator("#upload-status")).to_contain_text("choose one above")
    assert page.locator("#file-list li.done").count() == 0  # nothing was sent

    page.get_by_role("button", name="Use the card's tier (contributor-review)").click()
    expect(choice).to_be_hidden()
    expect(page.get_by_label("Access tier", exact=True)).to_have_value("contributor-review")
    expect(page.get_by_label("Access tier (from the model)")).to_have_value("contributor-review")
    expect(page.locator("#open-confirm-field")).to_be_hidden()
    page.get_by_role("button", name="Upload and submit for review").click()
    status = page.locator("#upload-status")
    expect(status).to_contain_text("waiting for a registry administrator", timeout=60_000)


def test_an_open_upload_needs_an_explicit_confirmation(page, make_account, model_copy):
    publisher = make_account("pub@mgh.example", institution="mgh")
    log_in(page, publisher.email, publisher.password)
    page.goto("/publish/upload")
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
    expect(page.locator("#review-note")).to_contain_text("credentialed")
    page.get_by_label("Model name").fill("cxr-open")
    page.set_input_files("#folder", str(model_copy))  # its card says open; the form credentialed
    expect(page.locator("#tier-choice")).to_be_visible()
    page.get_by_role("button", name="Use the card's tier (open)").click()

    confirm = page.locator("#open_confirm")
    expect(confirm).to_be_visible()
    page.get_by_role("button", name="Upload and publish").click()
    expect(page.locator("#upload-status")).to_contain_text("tick the confirmation")
    assert page.locator("#file-list li.done").count() == 0
    confirm.check()
    page.get_by_role("button", name="Upload and publish").click()
    expect(page.locator("#upload-status")).to_contain_text("It is published.", timeout=60_000)
