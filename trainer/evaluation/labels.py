"""Multi-label targets of a record: phantom findings by side, or a dataset's own labels.

Phantom labels (``kind``/``side``/``size``) become five targets: effusion and pneumothorax
per patient side, and cardiomegaly (a bilateral effusion is positive for both sides).
Other datasets give ``labels`` as ``{finding: 1 | 0 | -1 | null}`` (CheXpert style); a
finding is positive when its value is 1 and negative otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PHANTOM_TARGETS = (
    "effusion-right",
    "effusion-left",
    "pneumothorax-right",
    "pneumothorax-left",
    "cardiomegaly",
)


def _phantom_targets(labels: dict[str, Any]) -> set[str]:
    kind, side = labels.get("kind"), labels.get("side")
    if kind == "cardiomegaly":
        return {"cardiomegaly"}
    if kind in ("effusion", "pneumothorax"):
        sides = ("right", "left") if side == "bilateral" else (side,)
        return {f"{kind}-{s}" for s in sides}
    return set()


def target_names(all_labels: Sequence[dict[str, Any] | None]) -> tuple[str, ...]:
    """The targets these records' labels define (phantom schema or their own keys)."""
    present = [labels for labels in all_labels if labels]
    if not present:
        return ()
    if all("kind" in labels for labels in present):
        return PHANTOM_TARGETS
    return tuple(sorted({key for labels in present for key in labels}))


def label_matrix(all_labels: Sequence[dict[str, Any] | None], targets: Sequence[str]) -> np.ndarray:
    """(N, len(targets)) of 0/1."""
    matrix = np.zeros((len(all_labels), len(targets)), dtype=np.float32)
    for row, labels in enumerate(all_labels):
        if not labels:
            continue
        if "kind" in labels:
            positive = _phantom_targets(labels)
        else:
            positive = {key for key, value in labels.items() if value in (1, 1.0, True, "1")}
        for column, name in enumerate(targets):
            matrix[row, column] = float(name in positive)
    return matrix


def finding_group(labels: dict[str, Any] | None) -> str:
    """A hashable name of a record's finding (``effusion-left``, ``normal``...)."""
    if not labels:
        return "unlabelled"
    if "kind" in labels:
        return "-".join(str(p) for p in (labels.get("kind"), labels.get("side")) if p)
    positive = sorted(k for k, v in labels.items() if v in (1, 1.0, True, "1"))
    return "+".join(positive) or "no-finding"
