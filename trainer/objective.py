"""The denoising objective: noise, timesteps, prediction target, min-SNR weighting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import compute_snr
from transformers import CLIPTextModel

from trainer.data import PreparedData


def diffusion_loss(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    generator: torch.Generator,
    *,
    snr_gamma: float | None = None,
    noise_offset: float = 0.0,
) -> torch.Tensor:
    """Mean squared error of the UNet's prediction at random timesteps (draws from generator)."""
    batch, channels = latents.shape[:2]
    # Drawn on the CPU generator and moved: the same numbers on every device.
    noise = torch.randn(latents.shape, generator=generator)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((batch, channels, 1, 1), generator=generator)
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (batch,), generator=generator).to(latents.device)
    noise = noise.to(latents.device, latents.dtype)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction type {prediction_type!r}")
    prediction = unet(noisy, timesteps, encoder_hidden_states, return_dict=False)[0]
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")
    # Min-SNR weighting (Hang et al. 2023): cap the weight of low-noise timesteps.
    snr = compute_snr(noise_scheduler, timesteps)
    weights = torch.clamp(snr, max=snr_gamma)
    weights = weights / (snr + 1 if prediction_type == "v_prediction" else snr)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none")
    return (per_sample.mean(dim=list(range(1, per_sample.ndim))) * weights).mean()


def batch_latents(
    batch: dict[str, torch.Tensor],
    vae: AutoencoderKL,
    scaling_factor: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Scaled latents drawn from the VAE posterior: cached mean/std, or encoded now."""
    if "latent_mean" in batch:
        mean, std = batch["latent_mean"], batch["latent_std"]
    else:
        with torch.no_grad():
            posterior = vae.encode(batch["pixels"].to(vae.device, vae.dtype)).latent_dist
        mean, std = posterior.mean.float().cpu(), posterior.std.float().cpu()
    noise = torch.randn(mean.shape, generator=generator)
    return ((mean + std * noise) * scaling_factor).to(device)


def batch_text_states(
    batch: dict[str, torch.Tensor],
    text_encoder: CLIPTextModel,
    data: PreparedData,
    dropout: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """What the UNet attends to; a ``dropout`` share of captions become "" (for guidance)."""
    dropped = torch.rand(len(batch["input_ids"]), generator=generator) < dropout
    if "text_embedding" in batch:
        hidden = batch["text_embedding"].clone()
        hidden[dropped] = data.empty_text_embedding.to(hidden)
        return hidden.to(device)
    input_ids = batch["input_ids"].clone()
    input_ids[dropped] = data.empty_input_ids
    return text_encoder(input_ids.to(device), return_dict=False)[0]
