"""Run inside the side environment: load an export, write the text encoder's outputs.

    python transformers4_probe.py EXPORT OUT.safetensors PROMPT...

Writes the token ids and last hidden states per prompt, and the library versions.
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
versions = {"transformers": transformers.__version__, "diffusers": diffusers.__version__}
save_file({"input_ids": ids, "hidden": hidden.contiguous()}, out, metadata=versions)
print(json.dumps(versions))
