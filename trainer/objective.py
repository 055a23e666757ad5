"""The denoising objective: noise, timesteps, prediction target, min-SNR weighting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import compute_snr


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
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    if noise_offset:
        offset = torch.randn((batch, channels, 1, 1), generator=generator, device=latents.device)
        noise = noise + noise_offset * offset
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (batch,), generator=generator, device=latents.device)
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


def sample_latents(
    mean: torch.Tensor, std: torch.Tensor, scaling_factor: float, generator: torch.Generator
) -> torch.Tensor:
    """Draw from cached VAE posteriors, as ``latent_dist.sample()`` would, and scale."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device)
    return (mean + std * noise) * scaling_factor
