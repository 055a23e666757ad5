"""A small multi-label classifier trained on CPU: logistic regression on downsampled pixels.

Deterministic: full-batch L-BFGS from zero weights, so the same images give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FEATURE_SIZE = 16  # images are read at this size (padded to square), then flattened


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
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1e-2, iterations: int = 100
) -> LinearClassifier:
    """Fit on (N, D) features and (N, T) 0/1 labels."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-3
    x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    weight = torch.zeros(x.shape[1], y.shape[1], requires_grad=True)
    prior = (y.mean(dim=0).clamp(0.01, 0.99)).logit()
    bias = prior.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        loss = loss + l2 * (weight**2).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearClassifier(mean, scale, weight.detach(), bias.detach())
