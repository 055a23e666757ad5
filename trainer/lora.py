"""LoRA adapters on the UNet via peft, saved as diffusers-format safetensors, and merging."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


def add_lora_adapter(unet: UNet2DConditionModel, *, rank: int, alpha: float) -> None:
    """Freeze the UNet and attach a trainable LoRA adapter to its attention projections."""
    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=LORA_TARGETS
    )
    unet.add_adapter(config)


def save_lora_adapter(unet: UNet2DConditionModel, out_dir: Path) -> Path:
    """Write the adapter alone as ``pytorch_lora_weights.safetensors`` (diffusers format)."""
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(out_dir), unet_lora_layers=state, safe_serialization=True
    )
    return Path(out_dir) / LORA_WEIGHTS_NAME


def merge_lora_into_pipeline(base_path: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Load the base, fuse the adapter into its weights, and save a plain pipeline."""
    pipeline = StableDiffusionPipeline.from_pretrained(base_path)
    pipeline.load_lora_weights(str(adapter_dir), weight_name=LORA_WEIGHTS_NAME)
    pipeline.fuse_lora()
    pipeline.unload_lora_weights()
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)
