"""Does a model draw the prompted finding on the prompted side? Phantom prompts, analytic reader.

Prompts are reports of held-out phantoms (a seed no training set uses by default); each
generated image is read by trainer/phantom_reading.py and counted correct when it shows the
prompted finding on the prompted side. Accuracies carry 95% Wilson intervals. The reader
only means something on phantoms, so it runs only for models whose run summary or card
declares the phantom dataset; for any other model it is skipped with a note.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.evaluation.results import merge_results, phantom_trained
from trainer.inference import load_for_inference, resolve_inference
from trainer.phantom_reading import read_phantom
from trainer.phantoms import SIZES, Finding, write_report
from trainer.sampling import DEFAULT_GUIDANCE, generate_images, image_grid

HELD_OUT_SEED = 10_007
GROUPS = (
    Finding("effusion", "left", "moderate"),
    Finding("effusion", "right", "moderate"),
    Finding("effusion", "bilateral", "moderate"),
    Finding("pneumothorax", "left", "moderate"),
    Finding("pneumothorax", "right", "moderate"),
    Finding("cardiomegaly", None, "moderate"),
    Finding("normal"),
)


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Accuracy:
    """Correct out of total, with its 95% Wilson interval."""

    correct: int
    total: int

    @property
    def value(self) -> float:
        """The proportion correct."""
        return self.correct / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        low, high = wilson_interval(self.correct, self.total)
        return {
            **asdict(self),
            "accuracy": round(self.value, 4),
            "ci95": [round(low, 4), round(high, 4)],
        }


@dataclass
class EvaluationReport:
    """Per-group accuracy, and laterality over the one-sided prompts."""

    per_group: dict[str, Accuracy]
    laterality: Accuracy
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored in evaluation.json and the model card."""
        return {
            "method": "phantom prompts read by an analytic detector (trainer/phantom_reading.py)",
            "laterality": self.laterality.to_dict(),
            "per_finding": {name: acc.to_dict() for name, acc in self.per_group.items()},
            "settings": self.settings,
        }

    def format_table(self) -> str:
        """A plain-text table of accuracies with 95% intervals."""
        lines = [f"{'finding':<24}{'correct':>9}{'accuracy':>10}   95% CI"]
        rows = [*self.per_group.items(), ("laterality (one-sided)", self.laterality)]
        for name, acc in rows:
            low, high = wilson_interval(acc.correct, acc.total)
            lines.append(
                f"{name:<24}{acc.correct:>4}/{acc.total:<4}{acc.value:>10.1%}   "
                f"[{low:.1%}, {high:.1%}]"
            )
        return "\n".join(lines)


def group_name(finding: Finding) -> str:
    """``effusion-left``, ``cardiomegaly``, ``normal``..."""
    return "-".join(part for part in (finding.kind, finding.side) if part)


def held_out_prompts(per_group: int, seed: int = HELD_OUT_SEED) -> list[tuple[Finding, str]]:
    """``per_group`` phantom reports for each finding group, sizes cycling, phrasing varied."""
    rng = np.random.default_rng(seed)
    prompts = []
    for group in GROUPS:
        for i in range(per_group):
            size = SIZES[i % len(SIZES)] if group.size else None
            finding = Finding(group.kind, group.side, size)
            prompts.append((finding, write_report(finding, rng)))
    return prompts


PHANTOM_READER_SKIPPED = (
    "skipped: the analytic phantom reader only reads phantoms, and this model does not "
    "declare the synthetic-phantoms dataset (run summary or card); use --utility, --privacy, "
    "--diversity and --fid-manifest on real data instead"
)
PHANTOM_KEYS = ("method", "laterality", "per_finding", "settings")


def _model_folder(model: Path) -> Path:
    """The pipeline folder of a fit run folder, or ``model`` itself (an export, a pull)."""
    if (model / "pipeline" / "model_index.json").is_file():
        return model / "pipeline"
    return model


def skip_phantom_reader(model: Path, out_dir: Path | None = None) -> str:
    """Record in evaluation.json that the phantom reader was skipped, and why."""
    out_dir = out_dir or (model if _model_folder(model) != model else None)
    if out_dir is not None:
        merge_results(out_dir, {"phantom_reader": PHANTOM_READER_SKIPPED}, drop=PHANTOM_KEYS)
    return PHANTOM_READER_SKIPPED


def evaluate(
    model: Path,
    *,
    per_group: int = 20,
    seed: int = HELD_OUT_SEED,
    steps: int = 20,
    guidance_scale: float = DEFAULT_GUIDANCE,
    resolution: int | None = None,
    out_dir: Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> EvaluationReport | None:
    """Generate for held-out phantom prompts and read each image; write JSON and a grid.

    Returns None (and notes the skip in evaluation.json) for a model not trained on phantoms.
    """
    model = Path(model)
    folder = _model_folder(model)
    if not phantom_trained(model):
        skip_phantom_reader(model, out_dir)
        return None
    settings = resolve_inference(device, dtype)
    pipeline = load_for_inference(folder, settings)
    # ``fit`` saves the trained resolution as the pipeline's default (record_resolution).
    resolution = resolution or pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    prompts = held_out_prompts(per_group, seed)
    images = generate_images(
        pipeline,
        [text for _, text in prompts],
        resolution=resolution,
        steps=steps,
        seed=seed,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
        settings=settings,
    )
    findings = [finding for finding, _ in prompts]
    hits = [read_phantom(image).shows(f) for f, image in zip(findings, images, strict=True)]
    groups: dict[str, list[bool]] = {}
    for finding, hit in zip(findings, hits, strict=True):
        groups.setdefault(group_name(finding), []).append(hit)
    one_sided = [hit for f, hit in zip(findings, hits, strict=True) if f.side in ("left", "right")]
    report = EvaluationReport(
        per_group={name: Accuracy(sum(group), len(group)) for name, group in groups.items()},
        laterality=Accuracy(sum(one_sided), len(one_sided)),
        settings={
            "prompts_per_group": per_group,
            "seed": seed,
            "inference_steps": steps,
            "guidance_scale": guidance_scale,
            "resolution": resolution,
            **settings.describe(),
        },
    )
    out_dir = out_dir or (model if folder != model else None)
    if out_dir is not None:
        merge_results(out_dir, report.to_dict(), drop=("phantom_reader",))
        image_grid(images, columns=per_group).save(out_dir / "evaluation.png")
    return report
