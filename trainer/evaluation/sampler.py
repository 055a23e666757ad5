"""Sampling from the model under evaluation: its trained resolution, on the training device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers import StableDiffusionPipeline
from PIL import Image

from trainer.inference import Inference, load_for_inference, resolve_inference
from trainer.sampling import DEFAULT_GUIDANCE, generate_images


def model_folder(model: Path) -> Path:
    """The pipeline folder of a fit run folder, or ``model`` itself (an export, a pull)."""
    if (model / "pipeline" / "model_index.json").is_file():
        return model / "pipeline"
    return model


def training_device(model: Path) -> str | None:
    """The device type the run trained on (``cuda``, ``cpu``...): rank 0's report of a fit run."""
    rank = model / "processes" / "rank-0.json"
    if not rank.is_file():
        return None
    device = json.loads(rank.read_text("utf-8")).get("device")
    return str(device).split(":", 1)[0] if device else None


@dataclass
class ModelSampler:
    """Generates one image per prompt with seeds ``seed + offset + i``."""

    pipeline: StableDiffusionPipeline
    settings: Inference
    resolution: int
    steps: int
    guidance_scale: float
    seed: int
    batch_size: int

    def __call__(self, prompts: list[str], offset: int = 0) -> list[Image.Image]:
        return generate_images(
            self.pipeline,
            prompts,
            resolution=self.resolution,
            steps=self.steps,
            seed=self.seed + offset,
            guidance_scale=self.guidance_scale,
            batch_size=self.batch_size,
            settings=self.settings,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready generation settings."""
        return {
            "resolution": self.resolution,
            "inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "seed": self.seed,
            **self.settings.describe(),
        }


def open_sampler(
    model: Path,
    *,
    steps: int = 20,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    resolution: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> ModelSampler:
    """Load ``model``; ``auto`` device is the one it trained on when its run says so."""
    import torch

    trained_on = training_device(Path(model))
    if trained_on == "cuda" and not torch.cuda.is_available():
        trained_on = None  # trained elsewhere; ``auto`` then means the best device here
    default = torch.device(trained_on) if trained_on else None
    settings = resolve_inference(device, dtype, default_device=default)
    pipeline = load_for_inference(model_folder(Path(model)), settings)
    # ``fit`` saves the trained resolution as the pipeline's default (record_resolution).
    resolution = resolution or pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    return ModelSampler(pipeline, settings, resolution, steps, guidance_scale, seed, batch_size)
