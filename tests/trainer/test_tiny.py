"""The tiny base pipeline is built offline, is small, loads with diffusers and generates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline

from trainer.cli import main
from trainer.tiny import build_tiny_pipeline
from trainer.tokenizer import report_words


def test_tiny_pipeline_is_small_safetensors_only_and_generates(tmp_path: Path) -> None:
    path = build_tiny_pipeline(tmp_path / "base", seed=0)
    files = [p for p in path.rglob("*") if p.is_file()]
    names = {p.relative_to(path).as_posix() for p in files}
    assert "model_index.json" in names
    for part in ("unet", "vae", "text_encoder"):
        assert any(n.startswith(f"{part}/") and n.endswith(".safetensors") for n in names)
    assert {"tokenizer/vocab.json", "tokenizer/merges.txt"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".ckpt", ".pkl", ".py"))]
    assert sum(p.stat().st_size for p in files) < 5_000_000

    pipe = StableDiffusionPipeline.from_pretrained(path)
    assert pipe.unet.dtype == torch.float32
    generator = torch.Generator().manual_seed(0)
    image = pipe(
        "small left pleural effusion",
        height=32,
        width=32,
        num_inference_steps=4,
        generator=generator,
    ).images[0]
    assert image.size == (32, 32)
    assert np.asarray(image).std() > 0


def test_tiny_pipeline_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = build_tiny_pipeline(tmp_path / "a", seed=3)
    b = build_tiny_pipeline(tmp_path / "b", seed=3)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (a / weights).read_bytes() == (b / weights).read_bytes()


def test_tokenizer_covers_report_words_without_unknown_tokens(tmp_path: Path) -> None:
    path = build_tiny_pipeline(tmp_path / "base")
    tokenizer = StableDiffusionPipeline.from_pretrained(path).tokenizer
    assert tokenizer.model_max_length == 77
    for word in report_words():
        ids = tokenizer(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, word
    text = "Émile, 42 y/o: moderate RIGHT effusion — ¿new? 😀"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == (
        text.lower().replace(" ", "")
    )


def test_cli_init_base_writes_a_loadable_pipeline(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "init-base",
            "--out",
            str(tmp_path / "cli"),
            "--seed",
            "1",
            "--vae-steps",
            "0",
            "--text-steps",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "model_index.json").is_file()
    plain = build_tiny_pipeline(tmp_path / "plain", seed=1)
    weights = "text_encoder/model.safetensors"
    assert (tmp_path / "cli" / weights).read_bytes() != (plain / weights).read_bytes()


def test_vae_pretraining_on_phantoms_improves_reconstruction() -> None:
    from diffusers import AutoencoderKL

    from trainer.architectures import load_config
    from trainer.vae_pretrain import phantom_batch_pool, pretrain_vae_on_phantoms

    torch.manual_seed(0)
    vae = AutoencoderKL(**load_config("tiny_vae"))
    held_out = phantom_batch_pool(4, 32, seed=123)

    def error() -> float:
        with torch.no_grad():
            decoded = vae.decode(vae.encode(held_out).latent_dist.mean).sample
        return float((decoded - held_out).abs().mean())

    before = error()
    pretrain_vae_on_phantoms(vae, steps=12, batch_size=4, seed=0, progress_bar=False)
    assert error() < 0.6 * before
    assert vae.config.scaling_factor != 1.0


def test_sd15_configs_have_stable_diffusion_1_5_sizes() -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from trainer.architectures import load_config

    with torch.device("meta"):  # shapes only: nothing is allocated
        unet = UNet2DConditionModel(**load_config("sd15_unet"))
        vae = AutoencoderKL(**load_config("sd15_vae"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863


def test_text_pretraining_separates_left_from_right_reports(tiny_base: Path) -> None:
    from trainer.text_pretrain import pretrain_text_encoder_on_reports

    pipe = StableDiffusionPipeline.from_pretrained(tiny_base)
    encoder, tokenizer = pipe.text_encoder, pipe.tokenizer

    def relative_gap() -> float:
        texts = ["Moderate left pleural effusion.", "Moderate right pleural effusion."]
        ids = tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            left, right = encoder(ids)[0].mean(dim=1)
        return float((left - right).norm() / left.norm())

    before = relative_gap()
    pretrain_text_encoder_on_reports(encoder, tokenizer, steps=40, seed=0, progress_bar=False)
    assert relative_gap() > 2 * before
