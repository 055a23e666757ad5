"""LoRA adapters on the UNet via peft, saved as diffusers-format safetensors, and merging.

peft scales an adapter's output by ``lora_alpha / r``. A diffusers-format LoRA file holds
no alpha, and loaders that read none (diffusers before adapter metadata, other tools) use
``alpha = r``, i.e. scale 1. So the saved file has the scale folded into ``lora_B`` and
says ``lora_alpha = r`` in its metadata: every loader then computes what was trained.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from trainer.pipeline_files import NO_SAFETY_CHECKER, save_pipeline

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
TRAINED_METADATA = "roentgen_trained_lora"  # what was trained, before the scale was folded in


def add_lora_adapter(unet: UNet2DConditionModel, *, rank: int, alpha: float) -> None:
    """Freeze the UNet and attach a trainable LoRA adapter to its attention projections."""
    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=LORA_TARGETS
    )
    unet.add_adapter(config)


def _adapter_config(unet: UNet2DConditionModel) -> LoraConfig:
    return unet.peft_config["default"]


def save_lora_adapter(unet: UNet2DConditionModel, out_dir: Path) -> Path:
    """Write the adapter alone as ``pytorch_lora_weights.safetensors`` (diffusers format)."""
    config = _adapter_config(unet)
    scale = config.lora_alpha / config.r
    state = get_peft_model_state_dict(unet)
    state = {k: v * scale if ".lora_B." in k else v for k, v in state.items()}
    state = convert_state_dict_to_diffusers(state)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    metadata = {**config.to_dict(), "lora_alpha": config.r}  # the scale is in lora_B now
    metadata = {k: sorted(v) if isinstance(v, set) else v for k, v in metadata.items()}
    extra: dict[str, Any] = {}
    if (
        "unet_lora_adapter_metadata"
        in inspect.signature(StableDiffusionPipeline.save_lora_weights).parameters
    ):
        extra["unet_lora_adapter_metadata"] = metadata
    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(out_dir), unet_lora_layers=state, safe_serialization=True, **extra
    )
    path = Path(out_dir) / LORA_WEIGHTS_NAME
    _add_file_metadata(
        path, {TRAINED_METADATA: json.dumps({"r": config.r, "lora_alpha": config.lora_alpha})}
    )
    return path


def _add_file_metadata(path: Path, entries: dict[str, str]) -> None:
    """Add string entries to a safetensors file's header metadata (the file is small)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = {**(handle.metadata() or {}), **entries}
    save_file(load_file(str(path)), str(path), metadata=metadata)


def merge_lora_into_pipeline(base_path: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Load the base, fuse the adapter into its weights, and save a plain pipeline."""
    pipeline = StableDiffusionPipeline.from_pretrained(base_path, **NO_SAFETY_CHECKER)
    pipeline.load_lora_weights(str(adapter_dir), weight_name=LORA_WEIGHTS_NAME)
    pipeline.fuse_lora()
    pipeline.unload_lora_weights()
    return save_pipeline(pipeline, out_dir)
