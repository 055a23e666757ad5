"""Export writes a registry-ready folder; evaluate reports accuracy with Wilson intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline
from PIL import Image

from trainer.cli import main
from trainer.evaluate import GROUPS, evaluate, held_out_prompts, wilson_interval
from trainer.export import ExportError, export_run
from trainer.fid import fid, frechet_distance
from trainer.training import fit


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, phantom_manifest: Path):
    from trainer.config import FitConfig

    config = FitConfig(
        base=str(tiny_base),
        train_manifest=phantom_manifest,
        output_dir=tmp_path_factory.mktemp("run") / "run",
        resolution=32,
        train_batch_size=4,
        max_train_steps=3,
        validation_inference_steps=2,
        progress_bar=False,
    )
    return fit(config).output_dir


def test_exported_pipeline_draws_at_the_trained_resolution(finished_run: Path) -> None:
    """The tiny base defaults to 64 px; a model fine-tuned at 32 px must default to 32 px."""
    pipeline = StableDiffusionPipeline.from_pretrained(finished_run / "pipeline")
    image = pipeline("small left pleural effusion", num_inference_steps=1, output_type="pil")
    assert image.images[0].size == (32, 32)


def test_export_is_a_registry_ready_diffusers_folder(finished_run: Path, tmp_path: Path) -> None:
    from registry.publishing.validation import validate_folder

    out = tmp_path / "export"
    result = CliRunner().invoke(
        main,
        [
            "export", str(finished_run), "--out", str(out), "--base-ref", "stanford/roentgen@v1",
            "--sample-steps", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"README.md", "samples.png", "model_index.json"} <= names
    assert not [n for n in names if n.endswith((".py", ".bin", ".pt", ".ckpt", ".pkl"))]

    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    for field in (
        "license", "base_model", "datasets", "access_tier", "dua", "intended_use",
        "out_of_scope_use", "limitations", "training_data", "evaluation",
    ):  # fmt: skip
        assert card[field], field
    assert card["access_tier"] == "credentialed"
    assert card["dua"] == "physionet-credentialed-1.5.0"
    assert card["base_model"] == "stanford/roentgen@v1"
    assert card["lineage"]["base_revision"] == "v1"
    assert card["datasets"] == ["synthetic-phantoms"]
    assert card["hyperparameters"]["learning_rate"] == 1e-4
    assert card["metrics"]["steps"] == 3
    card_data, problems = validate_folder(out)
    assert problems == [], problems

    pipeline = StableDiffusionPipeline.from_pretrained(out)
    image = pipeline(
        "Small right pneumothorax.", height=32, width=32, num_inference_steps=2
    ).images[0]
    assert image.size == (32, 32)
    with pytest.raises(ExportError, match="not empty"):
        export_run(finished_run, out)


def test_evaluate_writes_accuracy_and_the_card_picks_it_up(
    finished_run: Path, tmp_path: Path
) -> None:
    report = evaluate(finished_run, per_group=1, steps=2)
    assert set(report.per_group) == {
        "effusion-left", "effusion-right", "effusion-bilateral", "pneumothorax-left",
        "pneumothorax-right", "cardiomegaly", "normal",
    }  # fmt: skip
    assert report.laterality.total == 4
    saved = json.loads((finished_run / "evaluation.json").read_text())
    assert saved["laterality"]["ci95"][0] <= saved["laterality"]["accuracy"]
    assert "laterality" in report.format_table()
    assert saved["settings"]["resolution"] == 32  # the trained size, not the base's 64 px default
    out = export_run(finished_run, tmp_path / "export", sample_steps=1)
    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert card["evaluation"]["laterality"]["total"] == 4
    exported = evaluate(out, per_group=1, steps=1, out_dir=tmp_path / "exported-evaluation")
    assert exported.settings["resolution"] == 32


def test_held_out_prompts_name_their_side() -> None:
    prompts = held_out_prompts(3)
    assert len(prompts) == 3 * len(GROUPS)
    for finding, text in prompts:
        if finding.side:
            assert finding.side in text.lower()


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(9, 10)
    assert low == pytest.approx(0.5958, abs=1e-4) and high == pytest.approx(0.9821, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and low == pytest.approx(0.9287, abs=1e-4)


def test_frechet_distance_and_fid_hook() -> None:
    mean, cov = np.zeros(2), np.eye(2)
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)
    shifted = frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1))
    assert shifted == pytest.approx(2.0)  # 1 + 1 + 4 - 2 * 2

    rng = np.random.default_rng(0)

    def images(brightness: int) -> list[Image.Image]:
        noise = rng.integers(0, 40, (12, 16, 16), dtype=np.uint8)
        return [Image.fromarray(n + brightness) for n in noise]

    def channel_means(batch: torch.Tensor) -> torch.Tensor:
        return batch.mean(dim=(2, 3))

    same = fid(images(100), images(100), channel_means, size=16)
    different = fid(images(100), images(200), channel_means, size=16)
    assert different > 100 * max(same, 1e-6)
