"""fit: the loss falls, resume is exact, LoRA changes the output, text encoder and EMA train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from trainer.cli import main
from trainer.config import ConfigError
from trainer.training import fit

UNET_WEIGHTS = "pipeline/unet/diffusion_pytorch_model.safetensors"


def generate(folder: Path, prompt: str = "Moderate left pleural effusion.") -> np.ndarray:
    pipeline = StableDiffusionPipeline.from_pretrained(folder)
    image = pipeline(
        prompt,
        height=32,
        width=32,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    return np.asarray(image, dtype=np.float32)


def test_full_fine_tune_loss_falls_and_the_export_generates(quick_config, tmp_path: Path) -> None:
    from trainer.export import export_run

    config = quick_config(max_train_steps=12, validation_steps=6, snr_gamma=5.0)
    result = fit(config)
    assert result.global_step == 12 and len(result.losses) == 12
    assert np.mean(result.losses[-4:]) < 0.8 * np.mean(result.losses[:4])
    run = config.output_dir
    for name in ("loss.png", "summary.json", "validation/step-6.png", "validation/step-12.png"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dataset"]["name"] == "synthetic-phantoms"
    assert summary["metrics"]["samples_per_second"] > 0
    assert (run / "checkpoints" / "checkpoint-12" / "training_state.json").is_file()

    exported = export_run(run, tmp_path / "export", sample_steps=1)
    image = generate(exported)
    assert image.shape == (32, 32, 3) and image.std() > 0


def test_resume_latest_continues_exactly(quick_config, tmp_path: Path) -> None:
    settings = dict(
        max_train_steps=8,
        checkpointing_steps=3,
        gradient_accumulation_steps=2,  # 5 updates per epoch: the run crosses an epoch
        use_ema=True,
        text_dropout=0.2,
    )
    straight = fit(quick_config(output_dir=tmp_path / "straight", **settings))

    def interrupt(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    interrupted = quick_config(output_dir=tmp_path / "interrupted", **settings)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, on_step=interrupt)
    with pytest.raises(ConfigError, match="resume"):
        fit(interrupted)  # refuses to start over on top of old checkpoints
    resumed = fit(
        quick_config(
            output_dir=tmp_path / "interrupted", resume_from_checkpoint="latest", **settings
        )
    )

    assert resumed.global_step == 8
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5, atol=1e-6)
    a = load_file(straight.output_dir / UNET_WEIGHTS)
    b = load_file(resumed.output_dir / UNET_WEIGHTS)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_lora_export_loads_and_changes_the_output(
    quick_config, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.training
    from trainer.export import export_run

    dtypes: dict[str, set[torch.dtype]] = {"trainable": set(), "frozen": set()}
    real_loss = trainer.training.diffusion_loss

    def loss_recording_dtypes(unet, *args, **kwargs):
        for p in unet.parameters():
            dtypes["trainable" if p.requires_grad else "frozen"].add(p.dtype)
        return real_loss(unet, *args, **kwargs)

    monkeypatch.setattr(trainer.training, "diffusion_loss", loss_recording_dtypes)
    config = quick_config(
        mode="lora", lora_rank=4, learning_rate=1e-2, max_train_steps=6, mixed_precision="bf16"
    )
    result = fit(config)
    assert dtypes == {"trainable": {torch.float32}, "frozen": {torch.bfloat16}}
    adapter = result.lora_dir / "pytorch_lora_weights.safetensors"
    assert adapter.is_file()
    assert all(t.dtype == torch.float32 for t in load_file(adapter).values())

    exported = export_run(
        result.output_dir, tmp_path / "export", include_adapter=True, sample_steps=2
    )
    merged = generate(exported)
    assert np.abs(merged - generate(tiny_base)).max() > 1.0  # the merged weights changed it

    with_adapter = StableDiffusionPipeline.from_pretrained(tiny_base)
    with_adapter.load_lora_weights(str(exported / "adapter"))
    image = with_adapter(
        "Moderate left pleural effusion.",
        height=32,
        width=32,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    np.testing.assert_allclose(np.asarray(image, dtype=np.float32), merged, atol=3.0)


def test_text_encoder_ema_checkpointing_without_caches_from_the_cli(
    quick_config, tiny_base: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    config = tmp_path / "fit.yaml"
    config.write_text(
        "\n".join(
            [
                f"base: {tiny_base}",
                f"train_manifest: {phantom_manifest}",
                "resolution: 32",
                "train_batch_size: 4",
                "max_train_steps: 50",
                "train_text_encoder: true",
                "cache_latents: false",
                "use_ema: true",
                "gradient_checkpointing: true",
                "snr_gamma: 5.0",
                "noise_offset: 0.05",
                "learning_rate: 0.001",
                "validation_inference_steps: 2",
            ]
        )
    )
    out = tmp_path / "cli-run"
    result = CliRunner().invoke(
        main,
        [
            "fit",
            "--config",
            str(config),
            "--out",
            str(out),
            "--max-train-steps",
            "3",
            "--no-progress-bar",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained 3 steps" in result.output
    assert not (out / "cache" / "latents").exists() and not (out / "cache" / "text").exists()
    base = load_file(tiny_base / "text_encoder" / "model.safetensors")
    tuned = load_file(out / "pipeline" / "text_encoder" / "model.safetensors")
    assert any(not torch.equal(base[k], tuned[k]) for k in base)


def test_lora_rejects_text_encoder_training(quick_config) -> None:
    with pytest.raises(ConfigError, match="full"):
        quick_config(mode="lora", train_text_encoder=True)
