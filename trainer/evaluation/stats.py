"""AUROC (Mann-Whitney, ties averaged) and patient-level bootstrap intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean AUROC over the targets that have both classes; None if none has."""
    values = [auroc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def interval(samples: Sequence[float]) -> list[float]:
    """The 2.5th and 97.5th percentiles."""
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def bootstrap(
    groups: np.ndarray,
    statistic: Callable[[np.ndarray], dict[str, float | None]],
    *,
    resamples: int,
    seed: int,
) -> dict[str, list[float]]:
    """Resample whole groups (patients) with replacement; each key's values over resamples.

    ``statistic`` maps row indices to named values; a resample where a value is None
    (e.g. no positives left) is left out of that key's distribution.
    """
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    rows_of = {g: np.flatnonzero(groups == g) for g in unique}
    samples: dict[str, list[float]] = {}
    for _ in range(resamples):
        chosen = rng.choice(unique, size=len(unique), replace=True)
        rows = np.concatenate([rows_of[g] for g in chosen])
        for key, value in statistic(rows).items():
            if value is not None:
                samples.setdefault(key, []).append(value)
    return samples
