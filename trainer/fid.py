"""Fréchet and kernel inception distances on real data, in a feature space the user supplies.

The project bundles no feature network (nothing is downloaded): pass a callable mapping a
float batch (N, 3, H, W) in [0, 1] to features (N, D) -- Inception, CLIP, a CXR DenseNet or
RadDino as in RoentGen and CheXGenBench -- as a Python object or ``module:function``.
Real and generated images are compared at the model's trained resolution: real images are
padded to a square (never squashed) and resized to it; the extractor gets that size unless
``feature_size`` asks for another. Generation runs on the training device by default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer.evaluation.pixels import pad_to_square
from trainer.images import load_xray
from trainer.manifest import read_manifest
from trainer.sampling import DEFAULT_GUIDANCE

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


def _square(image: Image.Image, size: int) -> Image.Image:
    square = pad_to_square(image.convert("RGB"))
    return square if square.size == (size, size) else square.resize((size, size), Image.BILINEAR)


def _batches(images: Sequence[Image.Image], size: int, batch_size: int):
    for start in range(0, len(images), batch_size):
        chunk = [
            np.asarray(_square(image, size), np.float32)
            for image in images[start : start + batch_size]
        ]
        yield torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2) / 255.0


@torch.no_grad()
def features_of(
    images: Sequence[Image.Image], extractor: FeatureExtractor, *, size: int, batch_size: int = 32
) -> np.ndarray:
    """(N, D) float64 features of ``images`` (padded to square, at ``size``)."""
    features = torch.cat(
        [extractor(batch).float().cpu() for batch in _batches(images, size, batch_size)]
    )
    return features.double().numpy()


def feature_statistics(
    images: Sequence[Image.Image], extractor: FeatureExtractor, *, size: int, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the features of ``images``."""
    array = features_of(images, extractor, size=size, batch_size=batch_size)
    return array.mean(axis=0), np.cov(array, rowvar=False)


def kernel_distance(
    real: np.ndarray, generated: np.ndarray, *, subsets: int = 10, subset_size: int = 100
) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over subsets."""
    dimension = real.shape[1]
    size = min(subset_size, len(real), len(generated))
    if size < 2:
        raise ValueError("KID needs at least two real and two generated images")
    rng = np.random.default_rng(0)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = generated[rng.choice(len(generated), size, replace=False)]
        kxx = (x @ x.T / dimension + 1) ** 3
        kyy = (y @ y.T / dimension + 1) ** 3
        kxy = (x @ y.T / dimension + 1) ** 3
        off = size * (size - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


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


def fidelity_for_model(
    model: Path,
    manifest: Path,
    extractor: FeatureExtractor,
    *,
    extractor_name: str = "feature extractor",
    count: int = 1000,
    resolution: int | None = None,
    steps: int = 20,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    feature_size: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> dict[str, object]:
    """Generate from the reports of a manifest's validation split; FID and KID against its
    images, at the model's trained resolution (``resolution`` overrides), JSON-ready."""
    from trainer.evaluation.sampler import open_sampler

    loaded = read_manifest(manifest)
    records = (loaded.select("validation") or loaded.records)[:count]
    sampler = open_sampler(
        model,
        steps=steps,
        guidance_scale=guidance_scale,
        seed=seed,
        resolution=resolution,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
    )
    generated = sampler([r.text for r in records])
    real = [load_xray(r.image) for r in records]
    size = feature_size or sampler.resolution
    real_features = features_of(real, extractor, size=size)
    generated_features = features_of(generated, extractor, size=size)
    score = frechet_distance(
        real_features.mean(axis=0),
        np.cov(real_features, rowvar=False),
        generated_features.mean(axis=0),
        np.cov(generated_features, rowvar=False),
    )
    kid, kid_std = kernel_distance(real_features, generated_features)
    return {
        "method": f"FID and KID (cubic kernel) in the space of {extractor_name}; real images "
        "padded to square, both sets at the trained resolution",
        "fid": round(score, 4),
        "kid": round(kid, 6),
        "kid_std": round(kid_std, 6),
        "feature_size": size,
        "sample_sizes": {"real": len(real), "generated": len(generated)},
        "generation": sampler.describe(),
    }


def fid_for_model(model: Path, manifest: Path, extractor: FeatureExtractor, **options) -> float:
    """FID only (see fidelity_for_model)."""
    return float(fidelity_for_model(model, manifest, extractor, **options)["fid"])  # type: ignore[arg-type]
