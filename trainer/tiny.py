"""Build a Stable Diffusion pipeline folder fully offline: tiny for CPU, or SD 1.5 size."""

from __future__ import annotations

import tempfile
from pathlib import Path

from diffusers import StableDiffusionPipeline

from trainer.architectures import build_components, build_scheduler
from trainer.pipeline_files import save_pipeline
from trainer.tokenizer import BOS_TOKEN, EOS_TOKEN, build_clip_tokenizer, write_clip_tokenizer_files


def build_base_pipeline(
    out_dir: Path,
    *,
    arch: str = "tiny",
    seed: int = 0,
    vae_pretrain_steps: int = 0,
    text_pretrain_steps: int = 0,
) -> Path:
    """Write a complete diffusers ``StableDiffusionPipeline`` folder (safetensors only).

    Optionally pre-train the VAE on phantom images and the text encoder on phantom reports
    (both stand in for the pre-training a real base inherits; see vae_pretrain.py and
    text_pretrain.py).
    """
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = build_clip_tokenizer(Path(tokenizer_dir))
    components = build_components(
        arch,
        vocab_size=len(tokenizer),
        bos_id=tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        eos_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        seed=seed,
    )
    if vae_pretrain_steps > 0:
        from trainer.vae_pretrain import pretrain_vae_on_phantoms

        pretrain_vae_on_phantoms(components.vae, steps=vae_pretrain_steps, seed=seed)
    if text_pretrain_steps > 0:
        from trainer.text_pretrain import pretrain_text_encoder_on_reports

        pretrain_text_encoder_on_reports(
            components.text_encoder, tokenizer, steps=text_pretrain_steps, seed=seed
        )
    if arch == "tiny":
        # Stored in half precision to keep the folder small; diffusers loads it back as fp32.
        components.unet.half()
        components.vae.half()
    pipeline = StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=tokenizer,
        unet=components.unet,
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    save_pipeline(pipeline, out_dir)
    # transformers 4's (slow) CLIPTokenizer needs these two files beside tokenizer.json.
    write_clip_tokenizer_files(out_dir / "tokenizer")
    return out_dir


def build_tiny_pipeline(
    out_dir: Path, *, seed: int = 0, vae_pretrain_steps: int = 0, text_pretrain_steps: int = 0
) -> Path:
    """Write a tiny offline SD pipeline (64 px default, 32 px works) for demos and tests."""
    return build_base_pipeline(
        out_dir,
        arch="tiny",
        seed=seed,
        vae_pretrain_steps=vae_pretrain_steps,
        text_pretrain_steps=text_pretrain_steps,
    )
