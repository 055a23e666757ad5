"""Sampling images from a pipeline with one seed per prompt, and tiling them into a grid."""

from __future__ import annotations

import math

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from client.generate import DEFAULT_GUIDANCE  # one default for the trainer and the client
from trainer.inference import Inference, autocast

__all__ = ["DEFAULT_GUIDANCE", "generate_images", "image_grid"]


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
    settings: Inference | None = None,
) -> list[Image.Image]:
    """Generate one image per prompt; prompt i uses seed ``seed + i`` whatever the batching.

    Seeds draw on the CPU, so a seed names the same starting noise on every device.
    ``settings`` gives the autocast dtype (default: the pipeline's own, no autocast).
    """
    pipeline.set_progress_bar_config(disable=True)
    settings = settings or Inference(pipeline.device, torch.float32)
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        with autocast(settings):
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
