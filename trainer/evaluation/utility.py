"""Downstream utility: does adding synthetic images help a classifier trained on few real ones?

Three arms train the same small classifier (trainer/evaluation/classifier.py): (a) a limited
real set, (b) the same plus N synthetic images generated from the real set's report texts
(each carrying the labels of the record whose text prompted it), (c) the synthetic images
alone. All are tested on held-out real images of other patients; macro AUROC has a 95%
interval from a patient-level bootstrap, and the gains (b - a, c - a) are paired
(the same resamples for every arm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from trainer.errors import TrainerError
from trainer.evaluation.classifier import FEATURE_SIZE, select_l2, train_classifier
from trainer.evaluation.labels import label_matrix, target_names
from trainer.evaluation.pixels import gray_stack
from trainer.evaluation.stats import bootstrap, interval, macro_auroc
from trainer.manifest import Record

Synthesizer = Callable[[list[str]], list[Image.Image]]
ARMS = ("real", "real+synthetic", "synthetic")
METHOD = (
    "logistic regression on 16x16 pixels (L-BFGS; L2 chosen per arm by 4-fold cross-validated "
    "log loss on that arm's training images, per finding), one output per finding; "
    "macro AUROC on held-out real images of other patients; patient-level bootstrap 95% CI"
)


class UtilityError(TrainerError):
    """The data cannot support the utility study (too few patients or labels)."""


@dataclass(frozen=True)
class Split:
    """The limited real training set and the held-out test set, disjoint by patient."""

    train: list[Record]
    test: list[Record]


def patient_of(record: Record) -> str:
    """The record's patient id, or its image path when the manifest gives none."""
    return record.patient_id or str(record.image)


def split_by_patient(
    records: Sequence[Record], *, real_count: int, test_fraction: float, seed: int
) -> Split:
    """Shuffle patients (seeded); the test takes ``test_fraction`` of them, the limited real
    set takes whole patients from the rest until it holds ``real_count`` images."""
    labelled = [r for r in records if r.labels]
    if not labelled:
        raise UtilityError("the manifest has no labels; the utility study needs labelled images")
    patients = sorted({patient_of(r) for r in labelled})
    if len(patients) < 4:
        raise UtilityError(f"only {len(patients)} patients with labels; need at least 4")
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    test_patients = set(shuffled[: max(1, round(len(shuffled) * test_fraction))])
    by_patient: dict[str, list[Record]] = {}
    for record in labelled:
        by_patient.setdefault(patient_of(record), []).append(record)
    train: list[Record] = []
    for patient in shuffled:
        if patient in test_patients or len(train) >= real_count:
            continue
        train.extend(by_patient[patient])
    test = [r for r in labelled if patient_of(r) in test_patients]
    return Split(train=train[:real_count], test=test)


def _load(records: Sequence[Record]) -> list[Image.Image]:
    from trainer.images import load_xray

    return [load_xray(r.image) for r in records]


def run_utility_study(
    split: Split,
    synthesize: Synthesizer,
    *,
    synthetic_count: int,
    seed: int,
    resamples: int = 1000,
    generation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the three arms, test on held-out real patients; the JSON-ready report."""
    if not split.train or not split.test:
        raise UtilityError("the patient split left the real training or the test set empty")
    targets = target_names([r.labels for r in split.train + split.test])
    prompts_from = [split.train[i % len(split.train)] for i in range(synthetic_count)]
    synthetic = synthesize([r.text for r in prompts_from])
    if len(synthetic) != synthetic_count:
        raise UtilityError(f"the model gave {len(synthetic)} images for {synthetic_count} prompts")

    def features(images: Sequence[Image.Image]) -> np.ndarray:
        return gray_stack(images, FEATURE_SIZE).reshape(len(images), -1).astype(np.float64)

    real_x = features(_load(split.train))
    real_y = label_matrix([r.labels for r in split.train], targets)
    synth_x = features(synthetic)
    synth_y = label_matrix([r.labels for r in prompts_from], targets)
    test_x = features(_load(split.test))
    test_y = label_matrix([r.labels for r in split.test], targets)
    training = {
        "real": (real_x, real_y),
        "real+synthetic": (np.concatenate([real_x, synth_x]), np.concatenate([real_y, synth_y])),
        "synthetic": (synth_x, synth_y),
    }
    strengths = {arm: select_l2(x, y, seed=seed) for arm, (x, y) in training.items()}
    scores = {
        arm: train_classifier(x, y, l2=strengths[arm]).scores(test_x)
        for arm, (x, y) in training.items()
    }
    groups = np.array([patient_of(r) for r in split.test])

    def statistic(rows: np.ndarray) -> dict[str, float | None]:
        values = {arm: macro_auroc(test_y[rows], scores[arm][rows]) for arm in ARMS}
        real = values["real"]
        for arm in ARMS[1:]:
            other = values[arm]
            values[f"{arm} - real"] = None if real is None or other is None else other - real
        return values

    point = statistic(np.arange(len(split.test)))
    samples = bootstrap(groups, statistic, resamples=resamples, seed=seed)

    def summary(key: str) -> dict[str, Any]:
        value = point[key]
        return {
            "value": None if value is None else round(value, 4),
            "ci95": interval(samples[key]) if samples.get(key) else None,
        }

    return {
        "method": METHOD,
        "metric": "macro AUROC",
        "targets": list(targets),
        "arms": {arm: summary(arm) for arm in ARMS},
        "gain": {key: summary(key) for key in ("real+synthetic - real", "synthetic - real")},
        "sample_sizes": {
            "real_train_images": len(split.train),
            "real_train_patients": len({patient_of(r) for r in split.train}),
            "synthetic_images": synthetic_count,
            "test_images": len(split.test),
            "test_patients": len(set(groups)),
        },
        "bootstrap": {"resamples": resamples, "unit": "patient", "seed": seed},
        "l2": {arm: [float(v) for v in values] for arm, values in strengths.items()},
        "seed": seed,
        "generation": generation or {},
    }
