"""Run inside the side environment: stock ``load_lora_weights`` of a shipped adapter.

    python lora_adapter_probe.py BASE ADAPTER_DIR OUT.safetensors

Writes the UNet's prediction from fixed noise (same torch: same noise) with the adapter
loaded the way a user of an older diffusers would load it, and the library versions.
"""

from __future__ import annotations

import json
import sys

import diffusers
import peft
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

base, adapter, out = sys.argv[1:4]
pipeline = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
pipeline.load_lora_weights(adapter, weight_name="pytorch_lora_weights.safetensors")
generator = torch.Generator().manual_seed(0)
size = pipeline.unet.config.sample_size
latents = torch.randn((1, 4, size, size), generator=generator)
context = torch.randn((1, 77, pipeline.unet.config.cross_attention_dim), generator=generator)
with torch.no_grad():
    prediction = pipeline.unet(latents, torch.tensor([500]), context).sample
versions = {"diffusers": diffusers.__version__, "peft": peft.__version__}
save_file({"unet": prediction.contiguous()}, out, metadata=versions)
print(json.dumps(versions))
