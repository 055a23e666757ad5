"""Training checkpoints: accelerate state plus EMA weights and the step, written atomically.

A checkpoint folder ``checkpoints/checkpoint-<step>`` becomes visible only once complete
(every rank has written its part), so ``--resume latest`` never picks up a half-written
one after a crash. A model with frozen weights (a LoRA-adapted UNet) is checkpointed by
its trainable weights alone: the frozen base is the base model's, not the run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from trainer.errors import TrainerError

STATE_FILE = "training_state.json"
EMA_FILE = "ema.safetensors"
TRAINABLE_FILE = "trainable_weights_{}.safetensors"


class CheckpointError(TrainerError):
    """A checkpoint that was asked for but cannot be used."""


def _step_of(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[1])


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.glob("checkpoint-*")
        if p.name.rsplit("-", 1)[1].isdigit() and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=_step_of)


def find_checkpoint(output_dir: Path, spec: str | None) -> Path | None:
    """Resolve ``latest`` (None if the run has none yet) or a checkpoint folder path."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(spec)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / "checkpoints" / spec
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{spec}: not a complete checkpoint (no {STATE_FILE})")
    return path


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: Path,
    step: int,
    *,
    ema: EMAModel | None,
    keep: int | None,
) -> Path | None:
    """Save everything needed to continue exactly at ``step``; prune to ``keep`` newest."""
    final = Path(output_dir) / "checkpoints" / f"checkpoint-{step}"
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial), safe_serialization=True)
    # Every rank writes its own random state into the folder: rename only after all did.
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    if ema is not None:
        state = ema.state_dict()
        shadows = {
            f"shadow.{i}": p.detach().cpu().contiguous()
            for i, p in enumerate(state.pop("shadow_params"))
        }
        save_file(shadows, str(partial / EMA_FILE), metadata={"state": json.dumps(state)})
    (partial / STATE_FILE).write_text(json.dumps({"global_step": step}), "utf-8")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    if keep is not None:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    return final


def load_checkpoint(accelerator: Accelerator, path: Path, *, ema: EMAModel | None) -> int:
    """Restore models, optimizer, scheduler and EMA from ``path``; return its global step."""
    accelerator.load_state(str(path))
    if ema is not None:
        if not (path / EMA_FILE).is_file():
            raise CheckpointError(f"{path} was saved without EMA weights; resume without --use-ema")
        with safe_open(str(path / EMA_FILE), framework="pt") as handle:
            state = json.loads(handle.metadata()["state"])
        shadows = load_file(str(path / EMA_FILE))
        state["shadow_params"] = [shadows[f"shadow.{i}"] for i in range(len(shadows))]
        ema.load_state_dict(state)
    return int(json.loads((path / STATE_FILE).read_text("utf-8"))["global_step"])


def checkpoint_trainable_weights_only(accelerator: Accelerator) -> None:
    """Save and load partly frozen models by their trainable weights (and check the match)."""

    def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        named = accelerator.unwrap_model(model).named_parameters()
        return {name: p for name, p in named if p.requires_grad}

    def save_hook(models: list[torch.nn.Module], weights: list[Any], output_dir: str) -> None:
        for i in reversed(range(len(models))):
            weights_of_model = trainable(models[i])
            if len(weights_of_model) == len(list(models[i].parameters())):
                continue  # fully trained: accelerate saves it whole
            weights.pop(i)
            if accelerator.is_main_process:
                tensors = {k: v.detach().cpu().contiguous() for k, v in weights_of_model.items()}
                save_file(tensors, str(Path(output_dir) / TRAINABLE_FILE.format(i)))

    def load_hook(models: list[torch.nn.Module], input_dir: str) -> None:
        for i in reversed(range(len(models))):
            path = Path(input_dir) / TRAINABLE_FILE.format(i)
            if not path.is_file():
                continue
            model = accelerator.unwrap_model(models.pop(i))
            saved = load_file(str(path), device=str(next(model.parameters()).device))
            expected = set(trainable(model))
            if set(saved) != expected:
                raise CheckpointError(
                    f"{path}: holds {len(saved)} trainable weights, the model has "
                    f"{len(expected)}; resume with the same --mode and --lora-rank"
                )
            model.load_state_dict(saved, strict=False)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
