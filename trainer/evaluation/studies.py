"""Run the utility, privacy and diversity evaluations of one model on a real manifest.

The manifest is the institution's data: its ``train`` records are what the model was
trained on, its ``validation`` records are held out (the privacy baseline and the
diversity reference). Nothing but numbers leaves this function; the side-by-side PNG of
the closest pairs is written into ``out_dir`` for the institution to look at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from trainer.evaluation.diversity import diversity_study
from trainer.evaluation.labels import finding_group
from trainer.evaluation.privacy import FeatureExtractor, privacy_study
from trainer.evaluation.results import merge_results
from trainer.evaluation.utility import run_utility_study, split_by_patient
from trainer.images import load_xray
from trainer.manifest import Record, read_manifest

Sampler = Callable[..., list[Image.Image]]


@dataclass
class StudyOptions:
    """Sample sizes and seeds (the defaults fit a CPU; the benchmark uses more)."""

    real_count: int = 32
    synthetic_count: int = 128
    test_fraction: float = 0.3
    resamples: int = 1000
    privacy_count: int = 64
    diversity_count: int = 16
    seed: int = 0
    extractor: FeatureExtractor | None = None
    extractor_name: str = "feature extractor"
    thresholds: dict[str, float] = field(default_factory=dict)


def _held_out(records: list[Record]) -> tuple[list[Record], list[Record]]:
    held = [r for r in records if r.split == "validation"]
    train = [r for r in records if r.split != "validation"]
    if not held or len(train) < 2:
        half = max(1, len(records) // 5)
        return records[half:], records[:half]
    return train, held


def run_studies(
    sampler: Sampler,
    manifest: Path,
    *,
    resolution: int,
    utility: bool,
    privacy: bool,
    diversity: bool,
    options: StudyOptions | None = None,
    out_dir: Path | None = None,
    generation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The requested sections, JSON-ready; merged into ``out_dir/evaluation.json`` if given.

    ``sampler(prompts, offset=0)`` returns one image per prompt (seeds ``seed + offset + i``).
    """
    options = options or StudyOptions()
    records = read_manifest(manifest).records
    train, held = _held_out(records)
    sections: dict[str, Any] = {}
    if utility:
        split = split_by_patient(
            records,
            real_count=options.real_count,
            test_fraction=options.test_fraction,
            seed=options.seed,
        )
        sections["utility"] = run_utility_study(
            split,
            sampler,
            synthetic_count=options.synthetic_count,
            seed=options.seed,
            resamples=options.resamples,
            generation=generation,
        )
    if privacy:
        # Training captions are the prompts most likely to call up a memorised image.
        prompts = [train[i % len(train)].text for i in range(options.privacy_count)]
        sections["privacy"] = privacy_study(
            [load_xray(r.image) for r in train],
            [load_xray(r.image) for r in held],
            sampler(prompts, offset=100_000),
            size=resolution,
            extractor=options.extractor,
            extractor_name=options.extractor_name,
            thresholds=options.thresholds,
            out_dir=out_dir,
        )
        sections["privacy"]["generation"] = generation or {}
    if diversity:
        sections["diversity"] = _diversity(sampler, train, held, resolution, options)
    if out_dir is not None and sections:
        merge_results(out_dir, sections)
    return sections


def _diversity(
    sampler: Sampler,
    train: list[Record],
    held: list[Record],
    resolution: int,
    options: StudyOptions,
) -> dict[str, Any]:
    groups = Counter(finding_group(r.labels) for r in train + held)
    finding = groups.most_common(1)[0][0]
    real = [r for r in train + held if finding_group(r.labels) == finding]
    prompt_from = next((r for r in held if finding_group(r.labels) == finding), real[0])
    count = options.diversity_count
    generated = sampler([prompt_from.text] * count, offset=200_000)
    return diversity_study(
        generated,
        [load_xray(r.image) for r in real[: max(count, 2)]],
        prompt=prompt_from.text,
        finding=finding,
        size=resolution,
        seed=options.seed,
    )
