"""Exports load alike with transformers 4.x and 5.x: text encoder weights in the shared layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.trainer.side_venv import SideVenvError, side_venv_python
from trainer.training import fit

HERE = Path(__file__).parent
PROMPTS = ["Moderate left pleural effusion.", "No acute cardiopulmonary process.", ""]
TEXT_ENCODER = "text_encoder/model.safetensors"


def lowest_versions_python() -> tuple[Path, dict[str, str]]:
    """The side venv's python; under CI a venv that cannot be built fails the test."""
    try:
        return side_venv_python()
    except SideVenvError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the transformers 4 side venv could not be built: {exc}")
        pytest.skip(f"no transformers 4 side venv here: {exc}")


def text_encoder_keys(folder: Path) -> list[str]:
    with safe_open(str(folder / TEXT_ENCODER), framework="pt") as handle:
        return list(handle.keys())  # noqa: SIM118


def text_encoder_outputs(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    pipeline = StableDiffusionPipeline.from_pretrained(folder)
    ids = pipeline.tokenizer(
        PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return ids, pipeline.text_encoder(ids)[0]


@pytest.fixture(scope="module")
def text_encoder_export(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path,
                        phantom_manifest: Path) -> Path:  # fmt: skip
    """A run that fine-tuned the text encoder too, exported."""
    from trainer.config import FitConfig
    from trainer.export import export_run

    work = tmp_path_factory.mktemp("portable")
    config = FitConfig(
        base=str(tiny_base), train_manifest=phantom_manifest, output_dir=work / "run",
        resolution=32, train_batch_size=4, max_train_steps=2, train_text_encoder=True,
        learning_rate=1e-3, validation_inference_steps=1, progress_bar=False,
    )  # fmt: skip
    result = fit(config)
    return export_run(result.output_dir, work / "export", sample_steps=1)


def test_text_encoders_are_written_in_the_layout_transformers_4_reads(
    tiny_base: Path, text_encoder_export: Path, tmp_path: Path
) -> None:
    """transformers 5 drops the text_model. prefix; 4.x then loads random weights (68/68)."""
    run = text_encoder_export.parent / "run" / "pipeline"
    for folder in (tiny_base, run, text_encoder_export):
        keys = text_encoder_keys(folder)
        assert keys and all(key.startswith("text_model.") for key in keys), folder
    # transformers 5 reads it back unchanged.
    ids, hidden = text_encoder_outputs(text_encoder_export)
    tuned = StableDiffusionPipeline.from_pretrained(run).text_encoder
    with torch.no_grad():
        torch.testing.assert_close(tuned(ids)[0], hidden)

    # A run written before the fix (unprefixed keys) is converted on export.
    from trainer.export import export_run

    old = tmp_path / "old-run"
    shutil.copytree(text_encoder_export.parent / "run", old, ignore=shutil.ignore_patterns("cache"))
    tensors = load_file(old / "pipeline" / TEXT_ENCODER)
    stripped = {k.removeprefix("text_model."): v for k, v in tensors.items()}
    save_file(stripped, old / "pipeline" / TEXT_ENCODER, metadata={"format": "pt"})
    exported = export_run(old, tmp_path / "export", sample_steps=1)
    assert all(key.startswith("text_model.") for key in text_encoder_keys(exported))


def test_an_export_gives_the_same_text_encoding_with_the_lowest_supported_versions(
    text_encoder_export: Path, tmp_path: Path
) -> None:
    """Loads the export in a side venv with transformers 4.x / diffusers 0.30 (cached)."""
    python, pins = lowest_versions_python()
    out = tmp_path / "side.safetensors"
    done = subprocess.run(
        [str(python), str(HERE / "transformers4_probe.py"), str(text_encoder_export), str(out),
         *PROMPTS],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    lowest = pins["transformers"].split("==")[1]
    assert versions["transformers"].startswith("4.") and versions["transformers"].startswith(lowest)
    side = load_file(out)
    ids, hidden = text_encoder_outputs(text_encoder_export)
    assert torch.equal(side["input_ids"], ids)
    torch.testing.assert_close(side["hidden"], hidden, atol=1e-5, rtol=1e-4)
    # The rest of the export reads alike too (configs written by a newer diffusers).
    pipeline = StableDiffusionPipeline.from_pretrained(text_encoder_export)
    generator = torch.Generator().manual_seed(0)
    size = pipeline.unet.config.sample_size
    latents = torch.randn((len(PROMPTS), 4, size, size), generator=generator)
    with torch.no_grad():
        unet = pipeline.unet(latents, torch.tensor([500]), hidden).sample
        decoded = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor).sample
    torch.testing.assert_close(side["unet"], unet, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(side["decoded"], decoded, atol=1e-4, rtol=1e-3)


def fixed_noise_prediction(unet: UNet2DConditionModel, size: int) -> torch.Tensor:
    """What lora_adapter_probe.py computes: the same noise from the same torch."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((1, 4, size, size), generator=generator)
    context = torch.randn((1, 77, unet.config.cross_attention_dim), generator=generator)
    with torch.no_grad():
        return unet(latents, torch.tensor([500]), context).sample


def test_a_shipped_lora_adapter_loads_with_its_trained_scale_in_the_lowest_diffusers(
    tiny_base: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    """diffusers 0.30 reads no adapter metadata (it takes alpha = rank): with alpha 16 and
    rank 4 the adapter's effect was a quarter of what was trained, so the scale must be in
    the weights themselves."""
    from trainer.checkpoints import TRAINABLE_FILE, list_checkpoints
    from trainer.config import FitConfig
    from trainer.export import ADAPTER_DIR, export_run
    from trainer.lora import add_lora_adapter

    python, _ = lowest_versions_python()
    config = FitConfig(
        base=str(tiny_base), train_manifest=phantom_manifest, output_dir=tmp_path / "run",
        mode="lora", lora_rank=4, lora_alpha=16.0, learning_rate=1e-2, resolution=32,
        train_batch_size=4, max_train_steps=4, validation_inference_steps=1,
        progress_bar=False,
    )  # fmt: skip
    run = fit(config)
    exported = export_run(run.output_dir, tmp_path / "export", include_adapter=True,
                          sample_steps=1)  # fmt: skip
    out = tmp_path / "side.safetensors"
    done = subprocess.run(
        [str(python), str(HERE / "lora_adapter_probe.py"), str(tiny_base),
         str(exported / ADAPTER_DIR), str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["diffusers"].startswith("0.30")

    size = UNet2DConditionModel.load_config(tiny_base, subfolder="unet")["sample_size"]
    base = fixed_noise_prediction(
        UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet"), size
    )
    trained_unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    add_lora_adapter(trained_unet, rank=4, alpha=16.0)
    last = list_checkpoints(run.output_dir)[-1]
    trained_unet.load_state_dict(load_file(last / TRAINABLE_FILE.format(0)), strict=False)
    trained = fixed_noise_prediction(trained_unet, size) - base  # what peft trained
    merged_unet = UNet2DConditionModel.from_pretrained(exported, subfolder="unet")
    merged = fixed_noise_prediction(merged_unet, size) - base
    side = load_file(out)["unet"] - base
    effect = trained.abs().mean()
    assert effect > 1e-4
    for loaded in (merged, side):
        assert (loaded - trained).abs().mean() < 0.05 * effect
