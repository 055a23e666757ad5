"""Memorisation: how close do generated images come to the training images?

For each generated image, the nearest training image in pixel space (RMS difference in
[0, 1], padded to square at one size) and in a feature space: by default a PCA encoder
fitted on the training images here (the top components: structure, not noise), or any
callable the user plugs in (a CXR feature extractor; distances between L2-normalised
features). The baseline is the same distance from real held-out images to the training
set: a model that generalises sits near it, a model that copies sits far below it. A
generated image is a near-copy when it is closer than the threshold in either space
(by default half the 5th percentile of the baseline). Everything runs at the
institution; the report holds numbers only, the side-by-side PNG stays in the output folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainer.evaluation.pixels import gray_stack
from trainer.sampling import image_grid

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
PCA_COMPONENTS = 32
THRESHOLD_FRACTION = 0.5
THRESHOLD_PERCENTILE = 5
HISTOGRAM_BINS = 20
PAIRS_FILE = "privacy-pairs.png"
SMALLEST_KEPT = 20


@dataclass(frozen=True)
class Space:
    """A way to turn (N, S, S) grayscale images into vectors whose distance means something."""

    name: str
    description: str
    embed: Callable[[np.ndarray], np.ndarray]


def pixel_space(size: int) -> Space:
    """RMS pixel difference: the distance between two vectors divided by sqrt(pixels)."""
    scale = 1.0 / size

    def embed(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(np.float64) * scale

    return Space("pixel", f"RMS pixel difference at {size} px, intensities in [0, 1]", embed)


def pca_space(training: np.ndarray, components: int = PCA_COMPONENTS) -> Space:
    """A PCA encoder fitted on the training images (the project's small offline encoder)."""
    flat = training.reshape(len(training), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[: max(1, min(components, len(flat) - 1))]
    scale = 1.0 / np.sqrt(flat.shape[1])

    def embed(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1) - mean) @ basis.T * scale

    return Space(
        "features",
        f"PCA encoder fitted on the training images ({len(basis)} components), RMS units",
        embed,
    )


def extractor_space(extractor: FeatureExtractor, name: str) -> Space:
    """A user-supplied extractor, (N, 3, H, W) in [0, 1] to (N, D); L2-normalised features."""

    def embed(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).float()[:, None].repeat(1, 3, 1, 1)
        with torch.no_grad():
            features = extractor(batch).float().cpu().numpy().astype(np.float64)
        return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)

    return Space("features", f"{name}, Euclidean distance of L2-normalised features", embed)


def nearest(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each query's nearest reference (Euclidean)."""
    squared = (
        (queries**2).sum(axis=1)[:, None]
        + (references**2).sum(axis=1)[None, :]
        - 2 * queries @ references.T
    )
    index = squared.argmin(axis=1)
    distance = np.sqrt(np.clip(squared[np.arange(len(queries)), index], 0, None))
    return distance, index


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "min": round(float(values.min()), 5),
        "p5": round(float(np.percentile(values, 5)), 5),
        "median": round(float(np.median(values)), 5),
        "mean": round(float(values.mean()), 5),
    }


def _histogram(generated: np.ndarray, baseline: np.ndarray) -> dict[str, list[float] | list[int]]:
    both = np.concatenate([generated, baseline])
    edges = np.linspace(0.0, float(both.max()) * 1.05 + 1e-9, HISTOGRAM_BINS + 1)
    return {
        "edges": [round(float(e), 5) for e in edges],
        "generated": np.histogram(generated, edges)[0].tolist(),
        "baseline": np.histogram(baseline, edges)[0].tolist(),
    }


def privacy_study(
    training: Sequence[Image.Image],
    held_out: Sequence[Image.Image],
    generated: Sequence[Image.Image],
    *,
    size: int,
    extractor: FeatureExtractor | None = None,
    extractor_name: str = "feature extractor",
    thresholds: dict[str, float] | None = None,
    out_dir: Path | None = None,
    pairs_shown: int = 8,
) -> dict[str, Any]:
    """Nearest-neighbour distances of ``generated`` to ``training``, against the baseline."""
    if len(training) < 2 or not held_out or not generated:
        raise ValueError("the privacy check needs 2+ training, 1+ held-out and 1+ generated images")
    train_px, held_px, gen_px = (gray_stack(s, size) for s in (training, held_out, generated))
    features = extractor_space(extractor, extractor_name) if extractor else pca_space(train_px)
    spaces: dict[str, Any] = {}
    flagged = np.zeros(len(generated), dtype=bool)
    nearest_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for space in (pixel_space(size), features):
        references = space.embed(train_px)
        gen_d, gen_i = nearest(space.embed(gen_px), references)
        base_d, _ = nearest(space.embed(held_px), references)
        nearest_of[space.name] = (gen_d, gen_i)
        given = (thresholds or {}).get(space.name)
        threshold = (
            float(given)
            if given is not None
            else THRESHOLD_FRACTION * float(np.percentile(base_d, THRESHOLD_PERCENTILE))
        )
        under = gen_d < threshold
        flagged |= under
        spaces[space.name] = {
            "description": space.description,
            "generated": _stats(gen_d),
            "baseline": _stats(base_d),
            "threshold": round(threshold, 5),
            "threshold_rule": "given"
            if given is not None
            else f"{THRESHOLD_FRACTION} x the baseline's {THRESHOLD_PERCENTILE}th percentile",
            "near_copies": int(under.sum()),
            "smallest": [round(float(d), 5) for d in np.sort(gen_d)[:SMALLEST_KEPT]],
            "histogram": _histogram(gen_d, base_d),
        }
    pixel_d, pixel_i = nearest_of["pixel"]
    order = np.argsort(pixel_d)
    examples = [
        {
            "generated": int(i),
            "training": int(pixel_i[i]),
            "pixel_distance": round(float(pixel_d[i]), 5),
            "feature_distance": round(float(nearest_of["features"][0][i]), 5),
        }
        for i in order
        if flagged[i]
    ][:pairs_shown]
    report: dict[str, Any] = {
        "method": (
            "nearest training image of each generated image, in pixel space and in a feature "
            "space, against real held-out images' nearest training image (the baseline)"
        ),
        "sample_sizes": {
            "generated": len(generated),
            "training": len(training),
            "held_out": len(held_out),
        },
        "spaces": spaces,
        "near_copies": {"count": int(flagged.sum()), "examples": examples},
        "passed": not bool(flagged.any()),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        pairs = []
        for i in order[:pairs_shown]:
            pairs += [generated[i], training[pixel_i[i]]]
        image_grid([p.convert("RGB").resize((size, size)) for p in pairs], columns=2).save(
            out_dir / PAIRS_FILE
        )
        report["pairs_image"] = PAIRS_FILE
    return report
