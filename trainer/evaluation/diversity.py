"""Diversity: mean pairwise MS-SSIM among samples of one prompt vs real images of one finding.

Lower means more diverse. MS-SSIM uses a 7-px Gaussian window (sigma 1.5) and as many of the
standard five scales as the image size allows (3 at 32 px), with the standard weights
renormalised. A model whose samples of one prompt are far more alike than real images of
that finding has collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from trainer.evaluation.pixels import gray_stack

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 7
SIGMA = 1.5
C1, C2 = 0.01**2, 0.03**2
MAX_PAIRS = 2000


def _window() -> torch.Tensor:
    coords = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of two (N, 1, S, S) batches in [0, 1]; (N,) values."""
    window = _window().to(a)
    scales = 1
    while scales < len(WEIGHTS) and a.shape[-1] // 2**scales >= WINDOW:
        scales += 1
    weights = torch.tensor(WEIGHTS[:scales], dtype=a.dtype)
    weights = weights / weights.sum()
    factors = []
    for scale in range(scales):
        mu_a, mu_b = F.conv2d(a, window), F.conv2d(b, window)
        var_a = F.conv2d(a * a, window) - mu_a**2
        var_b = F.conv2d(b * b, window) - mu_b**2
        cov = F.conv2d(a * b, window) - mu_a * mu_b
        contrast = ((2 * cov + C2) / (var_a + var_b + C2)).flatten(1).mean(1)
        if scale == scales - 1:
            luminance = ((2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1)).flatten(1).mean(1)
            factors.append(luminance * contrast)
        else:
            factors.append(contrast)
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    stacked = torch.stack(factors, dim=1).clamp(min=1e-6)
    return torch.exp((stacked.log() * weights).sum(dim=1))


def mean_pairwise_ms_ssim(images: Sequence[Image.Image], size: int, seed: int = 0) -> float:
    """Mean MS-SSIM over pairs (at most MAX_PAIRS, drawn with ``seed``)."""
    if len(images) < 2:
        raise ValueError("pairwise MS-SSIM needs at least two images")
    pixels = torch.from_numpy(gray_stack(images, size)).double()[:, None]
    pairs = list(combinations(range(len(images)), 2))
    if len(pairs) > MAX_PAIRS:
        chosen = np.random.default_rng(seed).choice(len(pairs), MAX_PAIRS, replace=False)
        pairs = [pairs[i] for i in sorted(chosen)]
    first = pixels[[i for i, _ in pairs]]
    second = pixels[[j for _, j in pairs]]
    return float(ms_ssim(first, second).mean())


def diversity_study(
    generated: Sequence[Image.Image],
    real: Sequence[Image.Image],
    *,
    prompt: str,
    finding: str,
    size: int,
    seed: int = 0,
) -> dict[str, Any]:
    """JSON-ready: generated vs real mean pairwise MS-SSIM, and their ratio."""
    synthetic = mean_pairwise_ms_ssim(generated, size, seed)
    reference = mean_pairwise_ms_ssim(real, size, seed)
    return {
        "method": "mean pairwise MS-SSIM (lower is more diverse), 7-px Gaussian window",
        "prompt": prompt,
        "finding": finding,
        "generated_ms_ssim": round(synthetic, 4),
        "real_ms_ssim": round(reference, 4),
        "ratio": round(synthetic / reference, 4) if reference > 0 else None,
        "sample_sizes": {"generated": len(generated), "real": len(real)},
        "size": size,
    }
