"""Utility, privacy, diversity and fidelity evaluations on phantoms, on CPU, with tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from trainer.cli import main
from trainer.evaluate import evaluate
from trainer.evaluation.calibration import memorising_copy, phantom_painter
from trainer.evaluation.diversity import mean_pairwise_ms_ssim
from trainer.evaluation.pixels import gray_array
from trainer.evaluation.sampler import open_sampler
from trainer.evaluation.stats import auroc, macro_auroc
from trainer.evaluation.studies import StudyOptions, run_studies
from trainer.evaluation.utility import patient_of, run_utility_study, split_by_patient
from trainer.export import export_run
from trainer.manifest import read_manifest
from trainer.phantoms import generate_phantoms
from trainer.training import fit


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def utility_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_phantoms(tmp_path_factory.mktemp("utility"), 200, size=32, seed=5)


def test_synthetic_images_that_draw_the_findings_beat_few_real_beyond_the_interval(
    utility_phantoms: Path,
) -> None:
    records = read_manifest(utility_phantoms).records
    split = split_by_patient(records, real_count=10, test_fraction=0.5, seed=0)
    assert not {patient_of(r) for r in split.train} & {patient_of(r) for r in split.test}
    report = run_utility_study(
        split, phantom_painter(utility_phantoms), synthetic_count=200, seed=0, resamples=200
    )
    real, mixed = report["arms"]["real"], report["arms"]["real+synthetic"]
    gain = report["gain"]["real+synthetic - real"]
    assert gain["ci95"][0] > 0, report  # the paired interval of the gain excludes zero
    assert mixed["ci95"][0] > real["ci95"][1], report  # and the arms' intervals do not overlap
    assert report["sample_sizes"] == {
        "real_train_images": 10, "real_train_patients": 10, "synthetic_images": 200,
        "test_images": len(split.test), "test_patients": len(split.test),
    }  # fmt: skip
    again = run_utility_study(
        split, phantom_painter(utility_phantoms), synthetic_count=200, seed=0, resamples=200
    )
    assert again == report  # seeded: the same figures every time


def test_split_keeps_each_patients_images_together(utility_phantoms: Path) -> None:
    records = read_manifest(utility_phantoms).records
    shared = [
        type(r)(r.image, r.text, f"patient-{i // 3}", r.split, r.labels)
        for i, r in enumerate(records)
    ]
    split = split_by_patient(shared, real_count=10, test_fraction=0.3, seed=4)
    train_patients = {patient_of(r) for r in split.train}
    assert not train_patients & {patient_of(r) for r in split.test}
    assert len(split.train) == 10


def test_auroc_and_ms_ssim_known_values() -> None:
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auroc(np.array([1, 1]), np.array([0.2, 0.3])) is None
    labels = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    assert macro_auroc(labels, labels.astype(float)) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)) for _ in range(4)]
    same = [noise[0]] * 3
    assert mean_pairwise_ms_ssim(same, 32) == pytest.approx(1.0, abs=1e-6)
    assert mean_pairwise_ms_ssim(noise, 32) < 0.2


def test_images_are_padded_to_square_not_squashed() -> None:
    tall = Image.new("L", (16, 32), 255)  # a white 1:2 strip
    pixels = gray_array(tall, 32)
    assert pixels[:, :8].max() == 0 and pixels[:, 24:].max() == 0  # black borders either side
    assert pixels[:, 8:24].min() == 1.0


def test_a_memorising_model_is_flagged_and_a_normal_one_passes(
    tiny_base: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    records = read_manifest(phantom_manifest).select("train")
    copier = memorising_copy(tiny_base, records[0].image, tmp_path / "copier")
    options = StudyOptions(privacy_count=8, seed=0)
    found = {}
    for name, model in (("copier", copier), ("normal", tiny_base)):
        sampler = open_sampler(model, steps=4, resolution=32, device="cpu", dtype="fp32")
        found[name] = run_studies(
            sampler, phantom_manifest, resolution=32, utility=False, privacy=True,
            diversity=False, options=options, out_dir=tmp_path / name,
        )["privacy"]  # fmt: skip
    copied, normal = found["copier"], found["normal"]
    assert not copied["passed"] and copied["near_copies"]["count"] >= 6, copied
    assert {e["training"] for e in copied["near_copies"]["examples"]} == {0}
    pixel = copied["spaces"]["pixel"]
    assert pixel["generated"]["median"] < pixel["baseline"]["min"]
    assert normal["passed"] and normal["near_copies"]["count"] == 0, normal
    assert sum(normal["spaces"]["pixel"]["histogram"]["generated"]) == 8
    assert copied["sample_sizes"]["generated"] == 8
    with Image.open(tmp_path / "copier" / copied["pairs_image"]) as pairs:
        assert pairs.size == (64, 32 * 8)  # generated | nearest training image, per row


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, phantom_manifest: Path):
    from trainer.config import FitConfig

    config = FitConfig(
        base=str(tiny_base), train_manifest=phantom_manifest,
        output_dir=tmp_path_factory.mktemp("eval-run") / "run", resolution=32,
        train_batch_size=4, max_train_steps=2, validation_inference_steps=1, progress_bar=False,
    )  # fmt: skip
    return fit(config).output_dir


def channel_means(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in feature extractor for the CLI tests: (N, 3, H, W) -> (N, 3)."""
    return torch.cat([batch.mean(dim=(2, 3)), batch.std(dim=(2, 3))], dim=1)


def test_cli_writes_every_section_into_evaluation_json_and_the_card(
    phantom_run: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(phantom_run, run)
    common = ["--steps", "2", "--seed", "3"]  # auto: the device the run trained on
    result = CliRunner().invoke(main, [
        "evaluate", str(run), "--utility", "--privacy", "--diversity", "--data",
        str(phantom_manifest), "--real-count", "6", "--synthetic-count", "6",
        "--privacy-count", "4", "--diversity-count", "3", "--resamples", "20", *common,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gain real+synthetic - real" in result.output and "near-copies" in result.output
    result = CliRunner().invoke(main, [
        "evaluate", str(run), "--fid-manifest", str(phantom_manifest), "--feature-extractor",
        "tests.trainer.test_evaluation:channel_means", "--fid-count", "4", *common,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["evaluate", str(run), "--per-finding", "1", *common])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "evaluation.json").read_text())
    assert {"utility", "privacy", "diversity", "fidelity", "laterality"} <= set(saved)
    assert saved["utility"]["sample_sizes"]["synthetic_images"] == 6
    assert saved["utility"]["generation"]["resolution"] == 32
    fidelity = saved["fidelity"]
    trained_on = json.loads((run / "processes" / "rank-0.json").read_text())["device"]
    assert fidelity["generation"]["device"].split(":")[0] == trained_on.split(":")[0]
    assert fidelity["feature_size"] == 32  # the trained resolution, not 299 or the base's 64
    sizes = fidelity["sample_sizes"]  # the manifest's validation split, up to --fid-count
    assert sizes["real"] == sizes["generated"] == 3 and "kid" in fidelity

    out = export_run(run, tmp_path / "export", sample_steps=1, device="cpu")
    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert card["evaluation"]["privacy"]["sample_sizes"]["generated"] == 4
    assert card["evaluation"]["utility"]["method"].startswith("logistic regression")
    assert not (out / "privacy-pairs.png").exists()  # the training images stay at home
    approved = export_run(run, tmp_path / "approved", sample_steps=1, device="cpu",
                          include_privacy_pairs=True)  # fmt: skip
    assert (approved / "privacy-pairs.png").is_file()
    from registry.publishing.validation import validate_folder

    assert validate_folder(approved)[1] == []


def test_the_phantom_reader_is_skipped_for_a_model_not_trained_on_phantoms(
    tiny_base: Path, tmp_path: Path
) -> None:
    assert evaluate(tiny_base, per_group=1, steps=1, out_dir=tmp_path) is None
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["phantom_reader"].startswith("skipped")
    assert "laterality" not in saved


def test_dataset_labels_become_multi_label_targets() -> None:
    from trainer.evaluation.labels import PHANTOM_TARGETS, label_matrix, target_names

    chexpert = [{"Effusion": 1, "Cardiomegaly": -1}, {"Effusion": 0, "Cardiomegaly": 1}, None]
    targets = target_names(chexpert)
    assert targets == ("Cardiomegaly", "Effusion")
    assert label_matrix(chexpert, targets).tolist() == [[0, 1], [1, 0], [0, 0]]
    bilateral = [{"kind": "effusion", "side": "bilateral", "size": "small"}]
    assert target_names(bilateral) == PHANTOM_TARGETS
    assert label_matrix(bilateral, PHANTOM_TARGETS).tolist() == [[1, 1, 0, 0, 0]]
