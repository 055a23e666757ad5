"""Validation images during and after training: fixed prompts, fixed seeds, one grid."""

from __future__ import annotations

from pathlib import Path

from diffusers import StableDiffusionPipeline

from trainer.inference import Inference
from trainer.manifest import Manifest, Record, read_manifest
from trainer.sampling import generate_images, image_grid

DEFAULT_PROMPT_COUNT = 4


def choose_validation_prompts(
    prompts: list[str], train: Manifest, validation_manifest: Path | None
) -> list[str]:
    """Given prompts, else texts of the validation manifest or split, else training texts."""
    if prompts:
        return list(prompts)
    source = held_out_records(train, validation_manifest) or train.records
    return [record.text for record in source[:DEFAULT_PROMPT_COUNT]]


def held_out_records(train: Manifest, validation_manifest: Path | None) -> list[Record]:
    """Records of the validation manifest, else the training manifest's validation split."""
    source = read_manifest(validation_manifest).records if validation_manifest else []
    return source or train.select("validation")


def write_validation_grid(
    pipeline: StableDiffusionPipeline,
    prompts: list[str],
    path: Path,
    *,
    resolution: int,
    steps: int,
    seed: int,
    settings: Inference | None = None,
) -> Path:
    """Generate one image per prompt (seed, seed+1, ...) and save them side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = generate_images(
        pipeline, prompts, resolution=resolution, steps=steps, seed=seed, settings=settings
    )
    image_grid(images, columns=len(images)).save(path)
    return path
