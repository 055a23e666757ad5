"""Screenshots of the main pages for the README: ``python -m tests.web.screenshots``.

Builds a throw-away registry with demo institutions, users and models (the tiny offline
model under realistic cards), serves it on loopback, and drives headless Chromium through
the home page, a model page, the upload form mid-upload and an admin queue. PNGs land in
``docs/screenshots/`` (or the folder given as the first argument).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from registry.unit_of_work import unit_of_work

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1280, 860

CARD = """---
license: other
base_model: {base}
datasets: [{dataset}]
access_tier: {tier}
dua: {dua}
intended_use: {intended}
out_of_scope_use: Clinical diagnosis or any decision about a patient.
limitations: Trained on one hospital's frontal views; lateral views and children are rare.
training_data: {training}
evaluation: FID (Inception, CLIP, CXR-DenseNet features); finding-side accuracy on phantoms.
tags: [{tags}]
---
# {title}

{summary}

## Training

| setting | value |
|---|---|
| resolution | 512 px |
| steps | {steps} |
| learning rate | 1e-5, cosine, 500 warm-up steps |
| precision | bf16, EMA |

## Use

```bash
registry-client pull {repo}
registry-client generate {repo} "Small left pleural effusion." --seed 7
```

Generated images are **synthetic** and labelled as such in their PNG metadata.
"""

MODELS = [
    {
        "repo": "stanford/roentgen-v2",
        "tier": "credentialed",
        "base": "stabilityai/stable-diffusion-2-1-base",
        "dataset": "mimic-cxr",
        "intended": "Research on synthetic chest X-ray augmentation and report-conditioned "
        "generation.",
        "training": "MIMIC-CXR-JPG frontal views paired with their impression sections.",
        "tags": "chest-x-ray, roentgen, full-finetune",
        "title": "RoentGen v2",
        "summary": "Stable Diffusion 2.1 fine-tuned on MIMIC-CXR image-impression pairs; UNet and "
        "text encoder trained together.",
        "steps": "60,000",
    },
    {
        "repo": "mgh/cxr-effusion-lora",
        "tier": "contributor-review",
        "base": "stanford/roentgen-v2",
        "dataset": "mgh-cxr-2019-2023",
        "intended": "Studying pleural effusion laterality in synthetic data for classifier "
        "training.",
        "training": "41,200 frontal radiographs with effusion findings, de-identified on site.",
        "tags": "chest-x-ray, lora, effusion",
        "title": "MGH effusion LoRA",
        "summary": "A LoRA adapter on RoentGen v2 fine-tuned on Mass General effusion studies. "
        "Access needs the institution's approval.",
        "steps": "12,000",
    },
    {
        "repo": "demo/tiny-phantom",
        "tier": "open",
        "base": "none",
        "dataset": "synthetic-phantoms",
        "intended": "Demonstrating and testing the registry, client and trainer end to end.",
        "training": "None; synthetic phantoms only.",
        "tags": "demo, synthetic",
        "title": "Tiny phantom (demo)",
        "summary": "A tiny pipeline built offline. It was never trained on patient data.",
        "steps": "0",
    },
]


class SlowUploads:
    """Slows chunk uploads so the form can be photographed mid-upload."""

    def __init__(self, app, delay: float) -> None:  # type: ignore[no-untyped-def]
        self.app, self.delay = app, delay

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if environ["REQUEST_METHOD"] == "PUT":
            time.sleep(self.delay)
        return self.app(environ, start_response)


def build_registry(workdir: Path):  # type: ignore[no-untyped-def]
    """A registry app with demo content; returns (app, tiny model folder)."""
    from registry.accounts import institutions, services
    from registry.accounts.verification import mark_verified
    from registry.app import create_app
    from registry.config import Settings
    from registry.credentials import applications
    from registry.db import Base
    from registry.demo import build_demo_folder
    from registry.models import AuditHead, Institution
    from tests.fixtures.repos import publish_folder
    from trainer.tiny import build_tiny_pipeline

    (workdir / "instance").mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(
        {},
        instance_path=workdir / "instance",
        secret_key="screenshots-secret-key-0123456789",
        session_cookie_secure=False,
        ratelimit_enabled=False,
    )
    app = create_app(settings=settings)
    registry = app.extensions["registry"]
    Base.metadata.create_all(registry.engine)
    with registry.engine.begin() as conn:
        conn.execute(AuditHead.__table__.insert().values(id=1, seq=0, hash="0" * 64))
    tiny = build_demo_folder(workdir / "tiny-phantom")
    now = registry.now()
    with unit_of_work(registry.sessions) as db:
        admin = services.register_user(
            db, email="admin@registry.example", password="screenshots-admin", display_name=
            "Registry Admin", accept_terms=True, now=now, is_registry_admin=True,
        )  # fmt: skip
        names = {"stanford": "Stanford AIMI", "mgh": "Mass General Brigham", "demo": "Demo"}
        for slug, name in names.items():
            institutions.create_institution(db, slug=slug, name=name, actor=admin, now=now)
        publisher = services.register_user(
            db, email="pat@mgh.example", password="screenshots-publisher",
            display_name="Pat Publisher", accept_terms=True, now=now,
        )  # fmt: skip
        mark_verified(db, publisher, actor=admin, now=now)
        mgh = institutions.get_institution(db, "mgh")
        institutions.set_membership(db, mgh, publisher, role="publisher", actor=admin, now=now)
        services.register_user(
            db, email="rita@hospital.example", password="screenshots-researcher",
            display_name="Rita Researcher", accept_terms=True, now=now,
        )  # fmt: skip
        for index, (email, name, org, summary) in enumerate(
            [
                (
                    "li.wei@uni.example",
                    "Li Wei",
                    "University Medical Center",
                    "Synthetic effusion cases to balance a pleural-effusion classifier.",
                ),
                (
                    "amara@lab.example",
                    "Amara Okafor",
                    "Imaging Informatics Lab",
                    "Benchmarking report-conditioned generators against CheXGenBench.",
                ),
                (
                    "j.novak@clinic.example",
                    "Jan Novák",
                    "Clinic Radiology Research",
                    "Teaching material with synthetic, clearly labelled radiographs.",
                ),
            ]  # fmt: skip
        ):
            user = services.register_user(
                db, email=email, password=f"screenshots-{index}-pw", display_name=name,
                accept_terms=True, now=now,
            )  # fmt: skip
            applications.apply(
                db, user,
                {"full_name": name, "affiliation": org, "job_title": "Research fellow",
                 "reference_name": "Dr. Reference", "reference_email": f"ref{index}@ref.example",
                 "research_summary": summary},
                now=now,
            )  # fmt: skip
        db.commit()  # publish_folder writes in its own session (SQLite allows one writer)
        for spec in MODELS:
            folder = workdir / spec["repo"].replace("/", "__")
            shutil.copytree(tiny, folder)
            dua = registry.policy.default_dua(spec["tier"]) or "none"
            (folder / "README.md").write_text(CARD.format(dua=dua, **spec), encoding="utf-8")
            publish_folder(registry, spec["repo"], folder, tier=spec["tier"])
        assert db.query(Institution).count() == 3
    # Different weights from the published models, so the upload is not deduplicated.
    fresh = build_tiny_pipeline(workdir / "cxr-cardiomegaly", seed=1)
    (fresh / "README.md").write_text((tiny / "README.md").read_text(), encoding="utf-8")
    return app, fresh


def log_in(page, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")


def take(out: Path) -> list[Path]:
    """Serve a demo registry and photograph its main pages into ``out``."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from tests.web.conftest import launch_chromium

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        app, tiny = build_registry(Path(tmp))
        app.wsgi_app = SlowUploads(app.wsgi_app, delay=0.35)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                viewport = {"width": WIDTH, "height": HEIGHT}

                def shoot(page, name: str, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
                    path = out / f"{name}.png"
                    page.screenshot(path=str(path), full_page=full_page)
                    saved.append(path)

                anonymous = browser.new_context(base_url=base, viewport=viewport).new_page()
                anonymous.goto("/")
                shoot(anonymous, "home")

                researcher = browser.new_context(base_url=base, viewport=viewport).new_page()
                log_in(researcher, "rita@hospital.example", "screenshots-researcher")
                researcher.goto("/models/mgh/cxr-effusion-lora")
                shoot(researcher, "model")

                publisher = browser.new_context(base_url=base, viewport=viewport).new_page()
                log_in(publisher, "pat@mgh.example", "screenshots-publisher")
                publisher.goto("/publish/upload?chunk_size=65536")
                publisher.wait_for_selector("#upload-form[data-ready=true]")
                publisher.get_by_label("Model name").fill("cxr-cardiomegaly")
                publisher.get_by_label("Version tag").fill("v1")
                publisher.get_by_label("Fine-tuned from").fill("stanford/roentgen-v2")
                publisher.set_input_files("#folder", str(tiny))
                publisher.wait_for_selector("#card-source:not([hidden])")
                publisher.get_by_role("button", name="Upload and submit for review").click()
                publisher.wait_for_function(
                    "() => document.getElementById('total-progress').value"
                    " / document.getElementById('total-progress').max > 0.4"
                )
                publisher.locator("fieldset").nth(3).evaluate(
                    "el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 24)"
                )
                shoot(publisher, "upload")

                admin = browser.new_context(base_url=base, viewport=viewport).new_page()
                log_in(admin, "admin@registry.example", "screenshots-admin")
                admin.goto("/admin/credentials")
                shoot(admin, "admin-queue")

                phone = browser.new_context(
                    base_url=base, viewport={"width": 390, "height": 844}, device_scale_factor=2
                ).new_page()
                phone.goto("/models/stanford/roentgen-v2")
                shoot(phone, "model-phone")
                browser.close()
        finally:
            server.shutdown()
            thread.join(timeout=10)
    return saved


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for path in take(out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
