"""Shared trainer fixtures: one tiny base pipeline and one small phantom set per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import FitConfig
from trainer.phantoms import generate_phantoms
from trainer.tiny import build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD pipeline folder (random weights, built offline)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("base") / "tiny", seed=0)


@pytest.fixture(scope="session")
def phantom_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 phantoms at 32 px with reports, labels and a manifest."""
    return generate_phantoms(tmp_path_factory.mktemp("phantoms"), 40, size=32, seed=3)


@pytest.fixture
def quick_config(tiny_base: Path, phantom_manifest: Path, tmp_path: Path):
    """A factory of small, fast FitConfigs writing into this test's folder."""

    def make(**overrides: object) -> FitConfig:
        values: dict[str, object] = {
            "base": str(tiny_base),
            "train_manifest": phantom_manifest,
            "output_dir": tmp_path / "run",
            "resolution": 32,
            "train_batch_size": 4,
            "max_train_steps": 4,
            "learning_rate": 1e-3,
            "checkpointing_steps": 100,
            "validation_inference_steps": 2,
            "progress_bar": False,
        }
        values.update(overrides)
        return FitConfig(**values)

    return make
