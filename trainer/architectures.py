"""Model configurations kept in the project: a tiny pipeline for CPU and SD 1.5 size for GPUs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from trainer.config import ARCHITECTURES


@dataclass
class BaseComponents:
    """The trainable parts of a Stable Diffusion pipeline, freshly initialised."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel


def load_config(name: str) -> dict[str, Any]:
    """Load a bundled JSON config such as ``tiny_unet`` or ``scheduler``."""
    text = resources.files("trainer").joinpath(f"configs/{name}.json").read_text("utf-8")
    return json.loads(text)


def text_encoder_config(arch: str, vocab_size: int, bos_id: int, eos_id: int) -> CLIPTextConfig:
    """Return the CLIP text config of ``arch`` sized for a tokenizer's vocabulary."""
    return CLIPTextConfig(
        **load_config(f"{arch}_text_encoder"),
        vocab_size=vocab_size,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def build_components(
    arch: str, *, vocab_size: int, bos_id: int, eos_id: int, seed: int = 0
) -> BaseComponents:
    """Build randomly initialised UNet, VAE and text encoder for ``arch`` (no download)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**load_config(f"{arch}_unet"))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**load_config(f"{arch}_vae"))
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(text_encoder_config(arch, vocab_size, bos_id, eos_id))
    return BaseComponents(unet=unet, vae=vae, text_encoder=text_encoder)


def build_scheduler() -> DPMSolverMultistepScheduler:
    """Return the sampling scheduler saved with every base pipeline (SD 1.5 noise schedule)."""
    return DPMSolverMultistepScheduler(**load_config("scheduler"))
