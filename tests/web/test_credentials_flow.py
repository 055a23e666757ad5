"""A researcher registers, applies, uploads a training certificate and signs the DUA; an
admin approves; the access box turns green and the download works. Real Chromium."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.mail import mailed_link
from tests.web.pages import access_box, log_in

pytestmark = pytest.mark.browser

CERTIFICATE = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_researcher_gets_credentialed_and_downloads(
    page, new_page, page_events, tmp_path, gated_model, admin_account, tiny_model_dir, registry
):
    # Rita starts on the model page: a checklist of every step, the first one linked as next.
    page.goto("/models/demo/gated")
    box = access_box(page)
    steps = box.locator("li[data-requirement]")
    expect(steps.first).to_have_attribute("data-requirement", "authenticated")
    expect(box.locator("li.step-next")).to_have_attribute("data-requirement", "authenticated")
    expect(box.locator("li[data-state='todo']")).to_have_count(steps.count())
    expect(box).to_contain_text("Complete the CITI Data or Specimens Only Research training")
    box.get_by_role("link", name="register").click()
    page.get_by_label("Display name").fill("Rita Researcher")
    page.get_by_label("Email").fill("rita@hospital.example")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create account").click()
    # Registration returns to the model page it started from.
    expect(page).to_have_url(re.compile(r"/models/demo/gated$"))

    # The access box says exactly what is missing, each with a link to fix it.
    expect(box).to_have_attribute("data-access", "denied")
    expect(box.locator("li.step-next")).to_have_attribute("data-requirement", "email-verified")
    expect(box).to_contain_text("Email address rita@hospital.example not verified")
    # Rita opens the link the registry mailed her (the .eml outbox, without an SMTP server).
    page.goto(mailed_link(registry, "rita@hospital.example", "/account/verify/"))
    page.get_by_role("button", name="Verify my address").click()
    expect(page.get_by_text("Thank you: rita@hospital.example is verified.")).to_be_visible()
    page.goto("/models/demo/gated")
    expect(box).not_to_contain_text("not verified")
    expect(box).to_contain_text("Not a credentialed researcher")
    expect(box).to_contain_text("CITI Data or Specimens Only Research training not on file")
    expect(box).to_contain_text("PhysioNet Credentialed Health Data Use Agreement 1.5.0 not signed")
    expect(box).not_to_contain_text("physionet-credentialed-1.5.0")  # titles, not ids
    expect(page.locator("table.data a[href*='/resolve/']")).to_have_count(0)

    box.locator("li[data-requirement='credentialed'] a").click()
    page.get_by_label("Full legal name").fill("Rita Researcher")
    page.get_by_label("Organisation").fill("General Hospital")
    page.get_by_label("Job title").fill("Research fellow")
    page.get_by_label("Reference name").fill("Dr Supervisor")
    page.get_by_label("Reference email").fill("supervisor@hospital.example")
    page.get_by_label("Research summary").fill("Synthetic chest X-rays to augment a classifier.")
    page.get_by_role("button", name="Submit application").click()
    expect(page.locator("[data-status]")).to_have_text("pending")

    page.goto("/models/demo/gated")
    access_box(page).locator("li[data-requirement='training:citi-dsor'] a").click()
    certificate = tmp_path / "citi-certificate.pdf"
    certificate.write_bytes(CERTIFICATE)
    completed = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    page.get_by_label("Completion date").fill(completed)
    page.get_by_label(re.compile("Certificate file")).set_input_files(str(certificate))
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("Your training was submitted for review.")).to_be_visible()
    expect(page.locator("tr[data-training] .badge")).to_have_text("pending")

    page.goto("/models/demo/gated")
    access_box(page).locator("li[data-requirement='dua-signed'] a").click()
    expect(
        page.get_by_role(
            "heading", name="PhysioNet Credentialed Health Data Use Agreement 1.5.0", exact=True
        )
    ).to_be_visible()
    page.get_by_label("Type your full name to sign").fill("Rita Researcher")
    page.get_by_label("I have read this agreement").check()
    page.get_by_role("button", name="Sign").click()
    expect(page.locator("[data-signed]")).to_contain_text("You signed this agreement")

    page.goto("/models/demo/gated")
    expect(access_box(page)).to_contain_text("awaiting review")
    # Rita has done her part: the box turns amber, "waiting for review", not red.
    expect(box).to_have_attribute("data-access", "waiting")
    expect(box.get_by_role("heading", name="Waiting for review")).to_be_visible()
    expect(box.locator("li[data-requirement='credentialed']")).to_have_attribute(
        "data-state", "waiting"
    )
    expect(box.locator("li[data-requirement='dua-signed']")).to_have_attribute("data-state", "done")
    expect(box.locator("li[data-requirement='dua-signed'] .step-mark")).to_have_text("✓")
    expect(box.locator("li[data-state='todo']")).to_have_count(0)
    assert box.evaluate("el => getComputedStyle(el).backgroundColor") != box.evaluate(
        "() => { const d = document.createElement('div'); d.className = 'access-box denied';"
        " document.body.append(d); return getComputedStyle(d).backgroundColor; }"
    )

    # A registry admin accepts the application and the training (after viewing it).
    admin = new_page()
    log_in(admin, admin_account.email, admin_account.password)
    admin.goto("/admin/credentials")
    item = admin.locator(".queue-item", has_text="Rita Researcher")
    expect(item).to_contain_text("Synthetic chest X-rays")
    item.get_by_role("button", name="Accept").click()
    expect(admin.get_by_text("Application of rita@hospital.example accepted.")).to_be_visible()

    admin.get_by_role("link", name=re.compile("^Trainings")).click()
    item = admin.locator(".queue-item", has_text="rita@hospital.example")
    link = item.get_by_role("link", name=re.compile("View certificate"))
    viewed = admin.request.get(link.get_attribute("href"))
    assert viewed.status == 200 and viewed.body() == CERTIFICATE
    assert viewed.headers["content-type"] == "application/pdf"
    item.get_by_role("button", name="Accept").click()
    expect(
        admin.get_by_text(re.compile("Training of rita@hospital.example accepted"))
    ).to_be_visible()

    # The researcher's access box is green now, with expiry dates shown ahead of time.
    page.goto("/models/demo/gated")
    expect(access_box(page)).to_have_attribute("data-access", "allowed")
    expect(access_box(page)).to_contain_text("You can download this model")
    link = page.locator("table.data a", has_text="unet/diffusion_pytorch_model.safetensors")
    download = page.request.get(link.get_attribute("href"))
    assert download.status == 200
    expected = tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    assert (
        hashlib.sha256(download.body()).hexdigest()
        == hashlib.sha256(expected.read_bytes()).hexdigest()
    )
    with page.expect_download() as started:
        page.locator("table.data a", has_text="model_index.json").click()
    assert started.value.suggested_filename == "model_index.json"

    page.goto("/account")
    expect(page.locator("tr[data-tier='credentialed'] .badge-ok")).to_have_text("ready")
    valid_until = (
        dt.datetime.combine(dt.date.fromisoformat(completed), dt.time(), dt.UTC)
        + dt.timedelta(days=1095)
    ).date()
    expect(page.locator("aside")).to_contain_text(f"valid until {valid_until.isoformat()}")
    assert page_events.errors == []
