"""Fréchet distance on real data, in a feature space the user supplies.

The project bundles no feature network (nothing is downloaded): pass a callable mapping a
float batch (N, 3, H, W) in [0, 1] to features (N, D) -- Inception, CLIP, a CXR DenseNet or
RadDino as in RoentGen and CheXGenBench -- as a Python object or ``module:function``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer.images import load_xray
from trainer.inference import load_for_inference, resolve_inference
from trainer.manifest import read_manifest
from trainer.sampling import DEFAULT_GUIDANCE, generate_images

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def load_feature_extractor(spec: str) -> FeatureExtractor:
    """Import ``package.module:callable`` (code the user chose; nothing is downloaded)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{spec!r}: expected module:callable")
    extractor = getattr(importlib.import_module(module_name), attribute)
    if not callable(extractor):
        raise ValueError(f"{spec} is not callable")
    return extractor


def _batches(images: Sequence[Image.Image], size: int, batch_size: int):
    for start in range(0, len(images), batch_size):
        chunk = [
            np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
            for image in images[start : start + batch_size]
        ]
        yield torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2) / 255.0


@torch.no_grad()
def feature_statistics(
    images: Sequence[Image.Image], extractor: FeatureExtractor, *, size: int, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the features of ``images``."""
    features = torch.cat(
        [extractor(batch).float().cpu() for batch in _batches(images, size, batch_size)]
    )
    array = features.double().numpy()
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mu_a - mu_b||^2 + Tr(A + B - 2 (A^1/2 B A^1/2)^1/2), via symmetric eigendecompositions."""

    def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    root_a = psd_sqrt(np.atleast_2d(cov_a))
    cross = psd_sqrt(root_a @ np.atleast_2d(cov_b) @ root_a)
    difference = np.atleast_1d(mean_a - mean_b)
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))


def fid(
    real: Sequence[Image.Image],
    generated: Sequence[Image.Image],
    extractor: FeatureExtractor,
    *,
    size: int = 299,
    batch_size: int = 32,
) -> float:
    """FID between two image sets in the extractor's feature space."""
    stats_real = feature_statistics(real, extractor, size=size, batch_size=batch_size)
    stats_generated = feature_statistics(generated, extractor, size=size, batch_size=batch_size)
    return frechet_distance(*stats_real, *stats_generated)


def fid_for_model(
    model: Path,
    manifest: Path,
    extractor: FeatureExtractor,
    *,
    count: int = 1000,
    resolution: int | None = None,
    steps: int = 20,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    feature_size: int = 299,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> float:
    """Generate from the reports of a manifest's validation split; FID against its images.

    ``resolution`` defaults to the model's own (what ``fit`` trained it at).
    """
    loaded = read_manifest(manifest)
    records = (loaded.select("validation") or loaded.records)[:count]
    settings = resolve_inference(device, dtype)
    pipeline = load_for_inference(model, settings)
    resolution = resolution or pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    generated = generate_images(
        pipeline,
        [r.text for r in records],
        resolution=resolution,
        steps=steps,
        seed=seed,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
        settings=settings,
    )
    real = [load_xray(r.image) for r in records]
    return fid(real, generated, extractor, size=feature_size)
