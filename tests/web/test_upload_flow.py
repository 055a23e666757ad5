"""A publisher uploads a model folder through the form, reloads mid-upload and resumes; an
admin reviews and publishes it; the model page shows it. Real Chromium, real HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.pages import log_in

pytestmark = pytest.mark.browser

CHUNK = 64 * 1024
PARALLEL_FILES = 3  # as in static/js/upload.js


class SlowUploads:
    """WSGI middleware: delays each chunk PUT (so a reload lands mid-upload) and counts
    the bytes the browser sent."""

    def __init__(self, app, delay: float) -> None:  # type: ignore[no-untyped-def]
        self.app, self.delay = app, delay
        self.bytes_sent = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].startswith(
            "/api/v1/uploads/"
        ):
            time.sleep(self.delay)
            with self.lock:
                self.bytes_sent += int(environ.get("CONTENT_LENGTH") or 0)
        return self.app(environ, start_response)


def _folder_size(folder: Path) -> int:
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and p.name != "README.md" and not p.name.startswith(".")
    )


def _progress(page, selector: str = "#total-progress") -> float:  # type: ignore[no-untyped-def]
    return page.locator(selector).evaluate("el => el.value / el.max")


def test_publisher_uploads_resumes_after_reload_and_admin_publishes(
    app, page, new_page, page_events, make_account, admin_account, tiny_model_dir
):
    slow = SlowUploads(app.wsgi_app, delay=0.12)
    app.wsgi_app = slow
    publisher = make_account("pub@mgh.example", display_name="Pat Publisher", institution="mgh")
    total = _folder_size(tiny_model_dir)

    log_in(page, publisher.email, publisher.password)
    page.get_by_role("link", name="Publish", exact=True).click()
    page.get_by_role("link", name="Upload a model").click()
    # Small chunks so the progress bars move visibly on a 4 MB model.
    page.goto(f"/publish/upload?chunk_size={CHUNK}")
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")

    page.get_by_label("Model name").fill("cxr-tiny")
    page.get_by_label("Access tier", exact=True).select_option("credentialed")
    page.get_by_label("Version tag").fill("v1")
    page.set_input_files("#folder", str(tiny_model_dir))
    # The folder's README.md filled the card fields.
    expect(page.locator("#card-source")).to_be_visible()
    expect(page.get_by_label("Licence")).to_have_value("apache-2.0")
    # The card says open: the form asks, and the publisher keeps credentialed.
    page.get_by_role("button", name="Keep credentialed (the card will say credentialed)").click()
    expect(page.get_by_label("Access tier (from the model)")).to_have_value("credentialed")
    expect(page.locator("#file-list li")).to_have_count(12)
    page.get_by_role("button", name="Upload and submit for review").click()

    # Per-file and total progress move; reload while the upload is half-way.
    page.wait_for_function(
        "() => document.getElementById('total-progress').value"
        " / document.getElementById('total-progress').max > 0.25",
        timeout=30_000,
    )
    assert 0.25 < _progress(page) < 1
    assert page.locator("#file-list li.done").count() >= 1
    sent_before_reload = slow.bytes_sent
    page.reload()

    expect(page.locator("#resume-panel")).to_be_visible()
    expect(page.locator("#resume-text")).to_contain_text("was interrupted after")
    page.set_input_files("#folder", str(tiny_model_dir))
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Upload complete", timeout=60_000)
    expect(status).to_contain_text("waiting for a registry administrator")
    assert _progress(page) == 1
    # Resumed, not restarted: at most the chunks in flight at the reload were sent twice.
    assert sent_before_reload > 0.25 * total * 0.5
    assert slow.bytes_sent <= total + PARALLEL_FILES * CHUNK
    assert page.evaluate("() => Object.keys(localStorage).length") == 0

    page.get_by_role("link", name="See the submitted version").click()
    expect(page.locator("[data-state]")).to_have_text("in-review")

    # The admin reviews the card, files and validation report, and publishes.
    admin = new_page()
    log_in(admin, admin_account.email, admin_account.password)
    admin.get_by_role("link", name="Admin", exact=True).click()
    admin.get_by_role("link", name="Version reviews").click()
    admin.get_by_role("link", name="mgh/cxr-tiny").click()
    expect(admin.get_by_role("heading", name="Validation")).to_be_visible()
    expect(admin.get_by_text("unet/diffusion_pytorch_model.safetensors")).to_be_visible()
    admin.get_by_role("button", name="Publish").click()
    expect(admin.get_by_text("is published")).to_be_visible()

    # Anyone now finds it and sees its page; its access box follows the credentialed tier.
    page.goto("/")
    page.get_by_role("link", name="mgh/cxr-tiny").click()
    expect(page.get_by_role("heading", name="mgh/cxr-tiny")).to_be_visible()
    expect(page.locator(".badge-published").first).to_be_visible()
    expect(page.get_by_role("heading", name="Tiny phantom (demo)")).to_be_visible()
    expect(page.locator("table.data").get_by_text("model_index.json")).to_be_visible()
    assert page_events.errors == []


def test_refused_files_are_marked_beside_the_file(page, make_account, model_copy):
    publisher = make_account("pub2@mgh.example", institution="mgh")
    (model_copy / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    log_in(page, publisher.email, publisher.password)
    page.goto("/publish/upload")
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
    page.get_by_label("Model name").fill("with-pickle")
    page.set_input_files("#folder", str(model_copy))
    expect(page.get_by_label("Licence")).to_have_value("apache-2.0")
    page.get_by_role("button", name="Keep credentialed (the card will say credentialed)").click()
    page.get_by_role("button", name="Upload and submit for review").click()

    row = page.locator("#file-list li[data-path='unet/diffusion_pytorch_model.bin']")
    expect(row.locator(".problem")).to_contain_text("pickle")
    expect(page.locator("#upload-status")).to_contain_text("problem")
    assert page.locator("#file-list li .problem:not([hidden])").count() == 1
    expect(page.get_by_role("button", name="Upload and submit for review")).to_be_enabled()


def test_new_version_of_an_existing_model_records_its_lineage(
    page, make_account, open_model, tiny_model_dir
):
    publisher = make_account("pub@demo.example", institution="demo")
    log_in(page, publisher.email, publisher.password)
    page.goto("/publish")
    page.get_by_role("link", name="Upload a new version").click()
    expect(page.locator("input[name=mode][value=existing]")).to_be_checked()
    expect(page.get_by_label("Model name")).to_be_hidden()
    expect(page.get_by_label("Access tier (from the model)")).to_have_value("open")
    page.get_by_label("Version tag").fill("v2")
    page.get_by_label("Fine-tuned from").fill("demo/tiny@v1")
    page.set_input_files("#folder", str(tiny_model_dir))
    page.get_by_label("I confirm that anyone, without an account, may download").check()
    page.get_by_role("button", name="Upload and publish").click()

    # Open models need no review, so the version is published at once.
    expect(page.locator("#upload-status")).to_contain_text("It is published.")
    states = page.locator("#file-list li .file-state").all_inner_texts()
    assert len(states) == 12 and set(states) <= {"done", "already stored"}

    page.goto("/models/demo/tiny")
    expect(page.locator(".badge", has_text="v2").first).to_be_visible()
    lineage = page.locator("section[aria-labelledby=lineage-heading]")
    expect(lineage).to_contain_text("Fine-tuned from demo/tiny")
    expect(lineage.get_by_role("link")).to_have_attribute(
        "href", f"/models/demo/tiny/revision/{open_model.commit}"
    )
