"""Where and how the trainer generates: device, precision and CUDA speed-ups in one place.

Every command that samples images (fit's validation, ``evaluate``, ``export`` samples, FID)
takes a device and a dtype. ``auto`` means the training device for fit and the best device
here otherwise (CUDA, then MPS, then CPU); on CUDA the pipeline runs under bf16 (fp16 where
bf16 is missing) autocast with PyTorch's SDPA attention and TF32 matmuls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0

from client.errors import ConfigError as ClientConfigError
from client.generate import resolve_device, resolve_dtype
from trainer.errors import TrainerError
from trainer.pipeline_files import NO_SAFETY_CHECKER


class InferenceSettingError(TrainerError):
    """A device or dtype that this machine cannot use."""


@dataclass(frozen=True)
class Inference:
    """A resolved device and compute dtype for sampling."""

    device: torch.device
    dtype: torch.dtype

    def describe(self) -> dict[str, str]:
        """JSON-ready, for evaluation.json and the run summary."""
        return {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}


def resolve_inference(
    device: str = "auto", dtype: str = "auto", *, default_device: torch.device | None = None
) -> Inference:
    """Resolve ``auto`` values (the default device, when given, is what auto means)."""
    try:
        if device == "auto" and default_device is not None:
            name = default_device.type
        else:
            name = resolve_device(device)
        chosen = torch.device(name) if name != "cuda" else torch.device("cuda", _cuda_index())
        return Inference(chosen, resolve_dtype(dtype, chosen.type))
    except ClientConfigError as exc:
        raise InferenceSettingError(str(exc)) from exc


def _cuda_index() -> int:
    return torch.cuda.current_device()


def prepare_pipeline(pipeline: StableDiffusionPipeline, settings: Inference) -> None:
    """Move to the device; on CUDA use SDPA attention and TF32 (weights stay as loaded)."""
    pipeline.to(settings.device)
    pipeline.set_progress_bar_config(disable=True)
    if settings.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        pipeline.unet.set_attn_processor(AttnProcessor2_0())


@contextlib.contextmanager
def autocast(settings: Inference) -> Iterator[None]:
    """Mixed precision for sampling when the dtype is not fp32."""
    if settings.dtype == torch.float32:
        yield
        return
    with torch.autocast(settings.device.type, dtype=settings.dtype):
        yield


def load_for_inference(folder: str | Path, settings: Inference) -> StableDiffusionPipeline:
    """A pipeline folder loaded (fp32 weights) and prepared for ``settings``."""
    pipeline = StableDiffusionPipeline.from_pretrained(folder, **NO_SAFETY_CHECKER)
    prepare_pipeline(pipeline, settings)
    return pipeline
