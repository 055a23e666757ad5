"""LoRA: the trained scale survives saving; checkpoints hold the adapter only; no safety checker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPImageProcessor

from trainer.lora import add_lora_adapter, merge_lora_into_pipeline, save_lora_adapter
from trainer.training import fit


def unet_output(unet: UNet2DConditionModel) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((1, 4, 8, 8), generator=generator)
    hidden = torch.randn((1, 77, unet.config.cross_attention_dim), generator=generator)
    with torch.no_grad():
        return unet(sample, torch.tensor([500]), hidden).sample


def test_an_adapter_with_alpha_not_rank_keeps_its_scale_in_every_loader(
    tiny_base: Path, tmp_path: Path
) -> None:
    """Trained: 0.076 from the base; exported and stock-loaded: 0.012 (alpha/rank lost)."""
    base_output = unet_output(UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet"))
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    add_lora_adapter(unet, rank=4, alpha=16)
    torch.manual_seed(1)
    for name, parameter in unet.named_parameters():
        if "lora_B" in name:  # as after training (peft starts B at zero)
            parameter.data.normal_(0, 0.05)
    trained = unet_output(unet) - base_output
    adapter = save_lora_adapter(unet, tmp_path / "lora")

    merged = merge_lora_into_pipeline(tiny_base, adapter.parent, tmp_path / "merged")
    exported = unet_output(UNet2DConditionModel.from_pretrained(merged, subfolder="unet"))
    stock = StableDiffusionPipeline.from_pretrained(tiny_base)
    stock.load_lora_weights(str(adapter.parent))
    loaded = unet_output(stock.unet)

    size = trained.abs().mean()
    assert size > 1e-3
    for output in (exported, loaded):
        assert (output - base_output - trained).abs().mean() < 0.02 * size


def test_lora_checkpoints_hold_the_adapter_only_and_resume_exactly(
    quick_config, tiny_base: Path, tmp_path: Path
) -> None:
    settings = dict(mode="lora", lora_rank=4, lora_alpha=8.0, learning_rate=1e-2,
                    max_train_steps=4, checkpointing_steps=2)  # fmt: skip
    straight = fit(quick_config(output_dir=tmp_path / "straight", **settings))

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(quick_config(output_dir=tmp_path / "resumed", **settings), on_step=interrupt)
    resumed = fit(
        quick_config(output_dir=tmp_path / "resumed", resume_from_checkpoint="latest", **settings)
    )
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5, atol=1e-6)

    checkpoint = tmp_path / "straight" / "checkpoints" / "checkpoint-2"
    tensors = {}
    for path in checkpoint.glob("*.safetensors"):
        tensors.update(load_file(path))
    assert tensors and all("lora" in name for name in tensors)
    unet_bytes = (tiny_base / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    checkpoint_bytes = sum(p.stat().st_size for p in checkpoint.iterdir())
    assert checkpoint_bytes < unet_bytes / 4  # the base is fp16 on disk; LoRA is a sliver


@pytest.fixture(scope="module")
def base_with_safety_checker(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base plus a (tiny) NSFW safety checker, as stock SD 1.5 ships."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    folder = tmp_path_factory.mktemp("checked") / "base"
    shutil.copytree(tiny_base, folder)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                     "num_hidden_layers": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                       "num_hidden_layers": 1, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )  # fmt: skip
    pipeline = StableDiffusionPipeline.from_pretrained(folder)
    pipeline.register_modules(
        safety_checker=StableDiffusionSafetyChecker(config),
        feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32),
    )
    pipeline.register_to_config(requires_safety_checker=True)
    pipeline.save_pretrained(folder, safe_serialization=True)
    assert (folder / "safety_checker").is_dir()
    return folder


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_exports_never_carry_the_bases_safety_checker(
    quick_config, base_with_safety_checker: Path, tmp_path: Path, mode: str
) -> None:
    from trainer.export import export_run

    result = fit(quick_config(base=str(base_with_safety_checker), mode=mode, max_train_steps=1))
    exported = export_run(result.output_dir, tmp_path / "export", sample_steps=1)
    for folder in (result.pipeline_dir, exported):
        index = json.loads((folder / "model_index.json").read_text())
        assert index["safety_checker"] == [None, None], folder
        assert index.get("requires_safety_checker") is False
        assert not (folder / "safety_checker").exists()
        assert not (folder / "feature_extractor").exists()
    assert StableDiffusionPipeline.from_pretrained(exported).safety_checker is None
