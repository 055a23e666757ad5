"""Held-out validation loss: the training objective on images the model never trains on.

The same noise and timesteps are drawn for each held-out example every time (a fixed
seed), so successive values differ only because the weights changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from trainer.data import tokenize
from trainer.images import UnreadableImageError, load_xray, xray_to_tensor
from trainer.manifest import Record
from trainer.objective import diffusion_loss

HELD_OUT_SEED = 7_919


@dataclass
class HeldOut:
    """Encoded held-out examples: VAE posterior mean/std (CPU) and token ids."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    input_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)


@torch.no_grad()
def prepare_held_out(
    records: list[Record],
    *,
    tokenizer: CLIPTokenizer,
    vae: AutoencoderKL,
    resolution: int,
    limit: int,
    batch_size: int = 16,
) -> HeldOut | None:
    """Encode up to ``limit`` readable held-out records once (the VAE is frozen)."""
    pixels, texts = [], []
    for record in records:
        if len(pixels) == limit:
            break
        try:
            image = load_xray(record.image, min_size=resolution)
        except UnreadableImageError:
            continue  # already counted where the training data is checked
        pixels.append(xray_to_tensor(image, resolution))
        texts.append(record.text)
    if not pixels:
        return None
    means, stds = [], []
    for start in range(0, len(pixels), batch_size):
        batch = torch.stack(pixels[start : start + batch_size]).to(vae.device, vae.dtype)
        posterior = vae.encode(batch).latent_dist
        means.append(posterior.mean.float().cpu())
        stds.append(posterior.std.float().cpu())
    return HeldOut(torch.cat(means), torch.cat(stds), tokenize(tokenizer, texts)[0])


@torch.no_grad()
def held_out_loss(
    held_out: HeldOut,
    *,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    noise_scheduler: DDPMScheduler,
    scaling_factor: float,
    device: torch.device,
    batch_size: int,
    snr_gamma: float | None,
) -> float:
    """Mean objective over the held-out examples, in eval mode, with fixed randomness."""
    modes = [(m, m.training) for m in (unet, text_encoder)]
    for model, _ in modes:
        model.eval()
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    total = 0.0
    try:
        for start in range(0, len(held_out), batch_size):
            end = min(start + batch_size, len(held_out))
            mean, std = held_out.latent_mean[start:end], held_out.latent_std[start:end]
            latents = (mean + std * torch.randn(mean.shape, generator=generator)) * scaling_factor
            hidden = text_encoder(held_out.input_ids[start:end].to(device), return_dict=False)[0]
            loss = diffusion_loss(
                unet,
                noise_scheduler,
                latents.to(device),
                hidden,
                generator,
                snr_gamma=snr_gamma,
            )
            total += float(loss) * (end - start)
    finally:
        for model, was_training in modes:
            model.train(was_training)
    return total / len(held_out)
