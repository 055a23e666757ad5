"""Brief VAE pre-training on phantoms, so a tiny base decodes phantom-like images."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from trainer.phantoms import render_phantom, sample_finding

KL_WEIGHT = 1e-6


def phantom_batch_pool(count: int, size: int, seed: int) -> torch.Tensor:
    """Render ``count`` phantoms as a (count, 3, size, size) tensor in [-1, 1]."""
    rng = np.random.default_rng(seed)
    images = np.stack([render_phantom(sample_finding(rng), size, rng) for _ in range(count)])
    pixels = torch.from_numpy(images).float().div(127.5).sub(1.0)
    return pixels[:, None].expand(-1, 3, -1, -1).contiguous()


def pretrain_vae_on_phantoms(
    vae: AutoencoderKL,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    crop: int = 32,
    progress_bar: bool = True,
) -> float:
    """Train the VAE to reconstruct phantoms, set its latent scaling factor; return final L1.

    Batches alternate between whole 32 px phantoms and 32 px crops of 64 px phantoms: the
    convolutions then serve both sizes at a quarter of the cost of whole 64 px images.
    """
    generator = torch.Generator().manual_seed(seed)
    pools = [phantom_batch_pool(256, 32, seed), phantom_batch_pool(256, 64, seed + 1)]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    vae.train()
    l1 = torch.tensor(0.0)
    for step in tqdm(range(steps), desc="vae pre-training", disable=not progress_bar):
        pool = pools[step % len(pools)]
        batch = pool[torch.randint(len(pool), (batch_size,), generator=generator)]
        top, left = (
            2 * torch.randint(0, (pool.shape[-1] - crop) // 2 + 1, (2,), generator=generator)
        ).tolist()
        batch = batch[:, :, top : top + crop, left : left + crop]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.sample(generator=generator)
        reconstruction = vae.decode(latents).sample
        l1 = (reconstruction - batch).abs().mean()
        loss = l1 + torch.nn.functional.mse_loss(reconstruction, batch)
        loss = loss + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()
    with torch.no_grad():
        latents = vae.encode(pools[-1][:64]).latent_dist.mean
    # Unit-variance latents are what the diffusion noise schedule assumes (SD uses 0.18215).
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return float(l1.detach())
