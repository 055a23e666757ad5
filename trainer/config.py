"""The fine-tuning configuration: one dataclass, from Python, CLI flags or a YAML file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.errors import TrainerError

ARCHITECTURES = ("tiny", "sd15")  # bundled model configurations (trainer/configs/)
MODES = ("full", "lora")
MIXED_PRECISIONS = ("no", "fp16", "bf16")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "fp32", "fp16", "bf16")
TRACKERS = ("tensorboard",)


class ConfigError(TrainerError):
    """A fine-tuning configuration that cannot work, with what to change."""


@dataclass
class FitConfig:
    """Everything ``fit`` needs; defaults suit the tiny model on phantoms on a CPU."""

    base: str  # a local diffusers folder or a registry reference NS/NAME[@REV]
    train_manifest: Path  # JSONL or CSV of image,text (see trainer/manifest.py)
    output_dir: Path
    validation_manifest: Path | None = None  # default: records of train_manifest split=validation
    resolution: int | None = None  # default: the base's native size (UNet size x VAE scale)
    train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_train_steps: int = 500
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"  # any diffusers.optimization scheduler name
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    use_8bit_adam: bool = False
    mode: str = "full"  # "full" fine-tunes the UNet; "lora" trains a LoRA adapter on it
    lora_rank: int = 8
    lora_alpha: float = 8.0
    train_text_encoder: bool = False  # as RoentGen did (full mode only)
    text_encoder_learning_rate: float | None = None
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    snr_gamma: float | None = None  # min-SNR weighting; 5.0 is the paper's choice
    noise_offset: float = 0.0
    text_dropout: float = 0.0  # share of captions replaced by "" (classifier-free guidance)
    scrub_phi: bool = True  # remove dates, names, ___ markers... from texts (trainer/phi.py)
    cache_latents: bool = True
    cache_text_embeddings: bool = True  # only used while the text encoder is frozen
    cache_chunk_size: int = 1024  # records per cache file: the unit of sharing and resuming
    cache_num_workers: int | None = None  # image decoding processes (default: cores - 1, <= 8)
    checkpointing_steps: int = 100
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    validation_prompts: list[str] = field(default_factory=list)
    validation_steps: int = 0  # write validation images every N steps (0: only at the end)
    validation_inference_steps: int = 20
    validation_device: str = "auto"  # auto: the training device
    validation_dtype: str = "auto"  # auto: bf16 (fp16) on CUDA, fp32 on CPU
    validation_loss_steps: int = 100  # held-out loss every N steps (0: only at the end)
    validation_loss_samples: int = 64  # held-out examples it averages over (0: none)
    report_to: str | None = None  # "tensorboard" (needs the tensorboard package)
    distributed_timeout_minutes: int = 60  # how long ranks wait for each other (caching)
    seed: int = 0
    max_train_samples: int | None = None
    dataloader_num_workers: int = 0
    progress_bar: bool = True

    def __post_init__(self) -> None:
        self.train_manifest = Path(self.train_manifest)
        self.output_dir = Path(self.output_dir)
        if self.validation_manifest is not None:
            self.validation_manifest = Path(self.validation_manifest)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that cannot work."""
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ConfigError(f"mixed_precision must be one of {MIXED_PRECISIONS}")
        if self.mode == "lora" and self.train_text_encoder:
            raise ConfigError("train_text_encoder needs mode 'full'; LoRA trains the UNet only")
        if self.resolution is not None and (self.resolution < 16 or self.resolution % 8):
            raise ConfigError("resolution must be a multiple of 8, at least 16")
        if self.validation_device not in DEVICES:
            raise ConfigError(f"validation_device must be one of {DEVICES}")
        if self.validation_dtype not in DTYPES:
            raise ConfigError(f"validation_dtype must be one of {DTYPES}")
        if self.report_to is not None and self.report_to not in TRACKERS:
            raise ConfigError(f"report_to must be one of {TRACKERS}, not {self.report_to!r}")
        for name in (
            "train_batch_size",
            "gradient_accumulation_steps",
            "max_train_steps",
            "cache_chunk_size",
            "distributed_timeout_minutes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError("text_dropout must be in [0, 1)")
        if self.checkpointing_steps < 1:
            raise ConfigError("checkpointing_steps must be at least 1")

    @property
    def caches_text(self) -> bool:
        """Whether text embeddings are computed once instead of every step."""
        return self.cache_text_embeddings and not self.train_text_encoder

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready values."""
        values = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def load_fit_config(path: Path | None, overrides: dict[str, Any]) -> FitConfig:
    """Read a YAML config (if any) and apply overrides (CLI flags that were given)."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text("utf-8"))
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of setting: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    missing = [name for name in ("base", "train_manifest", "output_dir") if name not in values]
    if missing:
        raise ConfigError(f"missing settings: {', '.join(missing)}")
    return FitConfig(**values)
