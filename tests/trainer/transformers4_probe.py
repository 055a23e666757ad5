"""Run inside the side environment: load an export, write the text encoder's outputs.

    python transformers4_probe.py EXPORT OUT.safetensors PROMPT...

Writes the token ids and last hidden states per prompt, a UNet prediction and a VAE decode
from fixed noise, and the library versions.
"""

from __future__ import annotations

import json
import sys

import diffusers
import torch
import transformers
from diffusers import DiffusionPipeline
from safetensors.torch import save_file

folder, out, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
pipeline = DiffusionPipeline.from_pretrained(folder)
ids = pipeline.tokenizer(
    prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
).input_ids
with torch.no_grad():
    hidden = pipeline.text_encoder(ids)[0]
    # The UNet and VAE as this diffusers reads their configs (same torch: same noise).
    generator = torch.Generator().manual_seed(0)
    size = pipeline.unet.config.sample_size
    latents = torch.randn((len(prompts), 4, size, size), generator=generator)
    noise_prediction = pipeline.unet(latents, torch.tensor([500]), hidden).sample
    decoded = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor).sample
versions = {"transformers": transformers.__version__, "diffusers": diffusers.__version__}
tensors = {"input_ids": ids, "hidden": hidden, "unet": noise_prediction, "decoded": decoded}
save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=versions)
print(json.dumps(versions))
