"""A small multi-label classifier trained on CPU: logistic regression on downsampled pixels.

Deterministic: full-batch L-BFGS from zero weights, so the same images give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FEATURE_SIZE = 16  # images are read at this size (padded to square), then flattened
PIXEL_SCALE = 0.1  # intensities in [0, 1] are divided by this (one scale for every pixel)


@dataclass
class LinearClassifier:
    """Standardisation and one logistic output per target."""

    mean: np.ndarray
    scale: np.ndarray
    weight: torch.Tensor
    bias: torch.Tensor

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, targets) probabilities."""
        x = torch.from_numpy(((features - self.mean) / self.scale).astype(np.float32))
        with torch.no_grad():
            return torch.sigmoid(x @ self.weight + self.bias).numpy()


def train_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    l2: float | np.ndarray = 1e-2,
    iterations: int = 100,
) -> LinearClassifier:
    """Fit on (N, D) features and (N, T) 0/1 labels; ``l2`` is one strength or one per target."""
    # Centred, not standardised: scaling each pixel by its spread in the arm's own images
    # would give every arm a different penalty per pixel (a large mixed set would then win
    # through its preprocessing alone, even with noise images as its synthetic part).
    mean = features.mean(axis=0)
    scale = np.full_like(mean, PIXEL_SCALE)
    x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    weight = torch.zeros(x.shape[1], y.shape[1], requires_grad=True)
    strength = torch.as_tensor(np.broadcast_to(l2, (y.shape[1],)).astype(np.float32))
    prior = (y.mean(dim=0).clamp(0.01, 0.99)).logit()
    bias = prior.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        loss = loss + (strength * (weight**2).sum(dim=0)).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearClassifier(mean, scale, weight.detach(), bias.detach())


L2_CANDIDATES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _log_loss(classifier: LinearClassifier, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean log loss per target."""
    p = np.clip(classifier.scores(features), 1e-6, 1 - 1e-6)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(axis=0)


def select_l2(features: np.ndarray, labels: np.ndarray, *, seed: int, folds: int = 4) -> np.ndarray:
    """Per target, the L2 strength with the lowest cross-validated log loss on this training
    set alone.

    Each arm tunes its own regularisation, so a small real set is not compared
    under-regularised against a large mixed one (extra images of any kind act as a
    regulariser otherwise).
    """
    folds = min(folds, len(features))
    if folds < 2:
        return np.full(labels.shape[1], L2_CANDIDATES[1])
    fold_of = np.random.default_rng(seed).permutation(len(features)) % folds
    losses = []
    for l2 in L2_CANDIDATES:
        total = np.zeros(labels.shape[1])
        for fold in range(folds):
            train, test = fold_of != fold, fold_of == fold
            model = train_classifier(features[train], labels[train], l2=l2, iterations=50)
            total += _log_loss(model, features[test], labels[test])
        losses.append(total / folds)
    return np.asarray(L2_CANDIDATES)[np.argmin(np.stack(losses), axis=0)]
