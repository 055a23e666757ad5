"""Validation images during and after training: fixed prompts, fixed seeds, one grid."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from trainer.manifest import Manifest, read_manifest
from trainer.sampling import generate_images, image_grid

DEFAULT_PROMPT_COUNT = 4


def choose_validation_prompts(
    prompts: list[str], train: Manifest, validation_manifest: Path | None
) -> list[str]:
    """Given prompts, else texts of the validation manifest or split, else training texts."""
    if prompts:
        return list(prompts)
    source = read_manifest(validation_manifest).records if validation_manifest else []
    source = source or train.select("validation") or train.records
    return [record.text for record in source[:DEFAULT_PROMPT_COUNT]]


def write_validation_grid(
    pipeline: StableDiffusionPipeline,
    prompts: list[str],
    path: Path,
    *,
    resolution: int,
    steps: int,
    seed: int,
    autocast_dtype: torch.dtype | None = None,
) -> Path:
    """Generate one image per prompt (seed, seed+1, ...) and save them side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    autocast = (
        torch.autocast(pipeline.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with autocast:
        images = generate_images(pipeline, prompts, resolution=resolution, steps=steps, seed=seed)
    image_grid(images, columns=len(images)).save(path)
    return path
