"""Sampling images from a pipeline with one seed per prompt, and tiling them into a grid."""

from __future__ import annotations

import math

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

DEFAULT_GUIDANCE = 3.0  # RoentGen's inference setting


def image_grid(images: list[Image.Image], columns: int | None = None) -> Image.Image:
    """Tile equally sized images row by row."""
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width, rows * height))
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % columns) * width, (i // columns) * height))
    return grid


@torch.no_grad()
def generate_images(
    pipeline: StableDiffusionPipeline,
    prompts: list[str],
    *,
    resolution: int,
    steps: int = 20,
    seed: int = 0,
    guidance_scale: float = DEFAULT_GUIDANCE,
    batch_size: int = 16,
) -> list[Image.Image]:
    """Generate one image per prompt; prompt i uses seed ``seed + i`` whatever the batching."""
    pipeline.set_progress_bar_config(disable=True)
    device = pipeline.device
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        generators = [
            torch.Generator(device=device).manual_seed(seed + start + i) for i in range(len(chunk))
        ]
        result = pipeline(
            prompt=chunk,
            height=resolution,
            width=resolution,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generators,
        )
        images.extend(result.images)
    return images
