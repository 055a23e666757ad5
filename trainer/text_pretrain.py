"""Brief text-encoder pre-training on phantom reports, standing in for CLIP's pre-training.

A randomly initialised text encoder gives nearly the same hidden states for "left" and
"right" reports at most of its 77 positions, and a UNet's cross-attention (uniform at first)
then sees almost no difference between prompts. Real bases start from a pre-trained CLIP;
the tiny offline base instead learns, for a few hundred cheap steps, to carry a report's
finding, side and size in the mean of its hidden states over all positions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from trainer.phantoms import FINDINGS, SIZES, sample_finding, write_report

SIDE_CLASSES = ("none", "left", "right", "bilateral")
SIZE_CLASSES = ("none", *SIZES)


def report_batch(
    tokenizer: CLIPTokenizer, count: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``count`` phantom reports and their (kind, side, size) class labels."""
    findings = [sample_finding(rng) for _ in range(count)]
    texts = [write_report(finding, rng) for finding in findings]
    ids = tokenizer(
        texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    ).input_ids
    labels = torch.tensor(
        [
            [
                FINDINGS.index(f.kind),
                SIDE_CLASSES.index(f.side or "none"),
                SIZE_CLASSES.index(f.size or "none"),
            ]
            for f in findings
        ]
    )
    return ids, labels


def pretrain_text_encoder_on_reports(
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    progress_bar: bool = True,
) -> float:
    """Teach the encoder to carry finding, side and size in every position; return final loss."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    width = text_encoder.config.hidden_size
    heads = torch.nn.ModuleList(
        torch.nn.Linear(width, n) for n in (len(FINDINGS), len(SIDE_CLASSES), len(SIZE_CLASSES))
    )
    for head in heads:  # initialised from the generator, so the result depends on seed only
        torch.nn.init.normal_(head.weight, std=width**-0.5, generator=generator)
        torch.nn.init.zeros_(head.bias)
    parameters = list(text_encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    text_encoder.train()
    loss = torch.tensor(0.0)
    for _ in tqdm(range(steps), desc="text pre-training", disable=not progress_bar):
        ids, labels = report_batch(tokenizer, batch_size, rng)
        pooled = text_encoder(ids)[0].mean(dim=1)  # what uniform cross-attention would read
        loss = sum(F.cross_entropy(head(pooled), labels[:, i]) for i, head in enumerate(heads))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    text_encoder.eval()
    return float(loss.detach())
