"""fit: the loss falls, resume is exact, LoRA changes the output, text encoder and EMA train."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline
from PIL import Image
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


def test_resolution_defaults_to_the_bases_native_size(
    quick_config, tiny_base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It was 64 px whatever the base: an SD-1.5 fine-tune trained on 8x8 latents."""
    native_32 = tmp_path / "base-32px"
    shutil.copytree(tiny_base, native_32)
    unet_config = native_32 / "unet" / "config.json"
    unet_config.write_text(json.dumps({**json.loads(unet_config.read_text()), "sample_size": 16}))
    result = fit(quick_config(base=str(native_32), resolution=None, max_train_steps=1))
    assert result.summary["config"]["resolution"] == 32 and result.summary["warnings"] == []
    image = StableDiffusionPipeline.from_pretrained(result.pipeline_dir)(
        "Small left pleural effusion.", num_inference_steps=1
    ).images[0]
    assert image.size == (32, 32)

    with caplog.at_level(logging.WARNING, logger="trainer.training"):
        told = fit(quick_config(output_dir=tmp_path / "told", resolution=32, max_train_steps=1))
    assert "native 64 px" in told.summary["warnings"][0]  # the tiny base draws at 64 px
    assert "native 64 px" in caplog.text


def test_the_models_being_trained_are_in_train_mode(
    quick_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_pretrained returns eval mode: text-encoder dropout and checkpointing did nothing."""
    import trainer.training

    modes: list[tuple[bool, bool]] = []
    real_text_states = trainer.training.batch_text_states
    real_loss = trainer.training.diffusion_loss

    def record_text_encoder(batch, text_encoder, *args, **kwargs):
        modes.append(("text_encoder", text_encoder.training))
        return real_text_states(batch, text_encoder, *args, **kwargs)

    def record_unet(unet, *args, **kwargs):
        modes.append(("unet", unet.training))
        return real_loss(unet, *args, **kwargs)

    monkeypatch.setattr(trainer.training, "batch_text_states", record_text_encoder)
    monkeypatch.setattr(trainer.training, "diffusion_loss", record_unet)
    fit(quick_config(train_text_encoder=True, gradient_checkpointing=True, max_train_steps=2))
    assert {name for name, _ in modes} == {"text_encoder", "unet"}
    assert all(training for _, training in modes), modes


def test_a_non_finite_loss_stops_the_run_naming_the_step(
    tiny_base: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    """It trained on through NaN, saved NaN checkpoints and exited 0."""
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["fit", "--base", str(tiny_base), "--data", str(phantom_manifest), "--out", str(out),
         "--resolution", "32", "--train-batch-size", "4", "--learning-rate", "1e6",
         "--max-train-steps", "8", "--checkpointing-steps", "1", "--no-progress-bar",
         "--validation-inference-steps", "1"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    match = re.search(r"loss became (nan|inf|-inf) at step (\d+)", result.output)
    assert match, result.output
    step = int(match.group(2))
    assert "Traceback" not in result.output
    steps = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert steps and max(steps) == step - 1  # the last good one is kept, nothing after it
    assert f"checkpoint-{step - 1}" in result.output and "--resume latest" in result.output
    assert not (out / "pipeline").exists()


def test_held_out_loss_is_tracked_in_the_summary_and_the_curve(
    quick_config, phantom_manifest: Path
) -> None:
    from trainer.manifest import read_manifest

    result = fit(quick_config(max_train_steps=4, validation_loss_steps=2))
    curve = result.summary["metrics"]["validation_loss"]
    assert [step for step, _ in curve] == [2, 4]
    assert all(math.isfinite(value) and value > 0 for _, value in curve)
    held_out = len(read_manifest(phantom_manifest).select("validation"))
    assert result.summary["dataset"]["held_out_examples"] == held_out > 0
    pixels = np.asarray(Image.open(result.output_dir / "loss.png").convert("RGB")).reshape(-1, 3)
    orange = np.all(np.abs(pixels.astype(int) - [224, 123, 0]) < 30, axis=1)
    assert orange.sum() > 20  # the held-out points and line


def test_report_to_tensorboard_writes_the_losses(quick_config) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = fit(quick_config(max_train_steps=2, report_to="tensorboard"))
    events = sorted((result.output_dir / "logs").rglob("events.out.tfevents.*"))
    assert events
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"loss", "lr", "validation_loss"} <= tags


def test_report_to_tensorboard_without_it_installed_says_how(
    quick_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install"):
        fit(quick_config(report_to="tensorboard"))
