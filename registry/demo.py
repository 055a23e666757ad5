"""Demo content for ``make run``: institution ``demo`` and ``demo/tiny-phantom`` (open)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from registry.config import Settings
from registry.context import build_registry
from registry.demo_weights import copy_demo_pipeline
from registry.models import Institution
from registry.publishing.importer import import_folder
from registry.publishing.signing import load_signer
from registry.repos import services as repos
from registry.unit_of_work import unit_of_work

DEMO_REPO = "demo/tiny-phantom"

DEMO_CARD = """---
license: apache-2.0
base_model: none (randomly initialised tiny Stable Diffusion layout)
datasets: [synthetic-phantoms]
access_tier: open
dua: none
intended_use: Demonstrating and testing the registry, client and trainer end to end.
out_of_scope_use: Any clinical or diagnostic use; it is not trained on real patients.
limitations: A few hundred thousand parameters; images are tiny and barely phantom-like.
training_data: None; the VAE may be briefly fitted on synthetic phantoms made by registry-train.
evaluation: None; this model exists to exercise the software.
tags: [demo, chest-x-ray, synthetic]
---
# Tiny phantom (demo)

A tiny Stable-Diffusion-layout pipeline in the layout `registry-train init-base` writes.
It lets you try `huggingface_hub`, `diffusers` and `registry-client` against this registry
without downloading anything. It was never trained on patient data.
"""


def build_demo_folder(out: Path) -> Path:
    """Write the tiny pipeline with its model card into ``out`` (no torch needed)."""
    copy_demo_pipeline(out, seed=0)
    (out / "README.md").write_text(DEMO_CARD, encoding="utf-8")
    return out


def seed_demo(settings: Settings) -> str:
    """Import the demo model unless it is already there; returns what happened."""
    registry = build_registry(settings)
    namespace, name = DEMO_REPO.split("/")
    with unit_of_work(registry.sessions) as session:
        if repos.find_model(session, namespace, name) is not None:
            return f"{DEMO_REPO} already present"
        if session.scalar(select(Institution).where(Institution.slug == namespace)) is None:
            session.add(Institution(slug=namespace, name="Demo Institution"))
            session.flush()
        folder = build_demo_folder(settings.instance_path / "demo" / name)
        version = import_folder(
            session,
            registry.blobs,
            DEMO_REPO,
            folder,
            tier="open",
            tiers=registry.policy.tier_names(),
            tag="v1",
            now=registry.now(),
            signer=load_signer(session, registry.settings, registry.now()),
        )
        return f"seeded {DEMO_REPO}@{version.commit} (tag v1)"
