"""Known answers for the evaluations: a generator that draws exactly what each phantom report
says, and a model that copies a training image.

``registry-train evaluate`` can only be trusted if it tells these apart: synthetic images
that carry the findings must raise the classifier's AUROC, and a model that reproduces a
training image must be flagged by the privacy check. The tests and
``benchmarks/evaluation.py`` use both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer.images import load_xray, xray_to_tensor
from trainer.manifest import read_manifest
from trainer.phantoms import Finding, render_phantom


def phantom_painter(manifest: Path, *, size: int = 32, seed: int = 1):
    """A generator that renders a fresh phantom of the finding each report in ``manifest``
    names (new anatomy jitter and noise, never a copy): what a model that learnt the
    phantoms perfectly would draw."""
    labels = {r.text: r.labels for r in read_manifest(manifest).records}
    rng = np.random.default_rng(seed)

    def paint(prompts: list[str], offset: int = 0) -> list[Image.Image]:
        return [Image.fromarray(render_phantom(Finding(**labels[p]), size, rng)) for p in prompts]

    return paint


def memorising_copy(
    base: Path, image: Path, out: Path, *, resolution: int = 32, steps: int = 500, batch: int = 1
) -> Path:
    """``base`` with its VAE decoder fine-tuned to reproduce ``image`` from any latent, saved
    to ``out``: every sample it draws is that training image (a deliberate memoriser)."""
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(base)
    target = xray_to_tensor(load_xray(image), resolution)[None]
    vae = pipeline.vae.float()
    optimizer = torch.optim.Adam(vae.decoder.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    side = resolution // pipeline.vae_scale_factor
    channels = vae.config.latent_channels
    for _ in range(steps):
        # Sampled latents of an untrained UNet are far from unit variance (std 5-10 after
        # 4-20 steps): cover that range, so the copy does not depend on the sampler.
        scale = torch.exp(torch.empty(batch, 1, 1, 1).uniform_(0.0, 3.5, generator=generator))
        latents = torch.randn(batch, channels, side, side, generator=generator) * scale
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
        loss = ((decoded - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pipeline.save_pretrained(out)
    return out
