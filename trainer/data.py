"""Training data: decode and check images once, cache latents and text embeddings, batch.

Bad input never stops an epoch: unreadable images are found (and counted) while
preparing, before the first step; an image that breaks later is dropped from its batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextModel, CLIPTokenizer

from trainer.encoding_cache import ShardedTensors, file_fingerprint, fingerprint
from trainer.errors import TrainerError
from trainer.images import UnreadableImageError, load_xray, xray_to_tensor
from trainer.manifest import Record

logger = logging.getLogger(__name__)
ENCODE_BATCH = 16


@dataclass
class PreparedData:
    """Checked records with their token ids and, when cached, latents and text embeddings."""

    records: list[Record]
    input_ids: torch.Tensor  # (N, 77)
    empty_input_ids: torch.Tensor  # (77,), for caption dropout
    latents: ShardedTensors | None = None  # rows: mean, std of the VAE posterior
    text_embeddings: ShardedTensors | None = None  # rows: hidden
    empty_text_embedding: torch.Tensor | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    truncated_texts: int = 0


def tokenize(tokenizer: CLIPTokenizer, texts: list[str]) -> tuple[torch.Tensor, int]:
    """Token ids padded and truncated to the model length; also how many texts were cut."""
    full = tokenizer(texts, truncation=False, add_special_tokens=True).input_ids
    truncated = sum(len(ids) > tokenizer.model_max_length for ids in full)
    ids = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    return ids, truncated


def _pixel_batches(
    records: list[Record], resolution: int, skipped: Counter[str]
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (indices of readable records, pixels) in batches; count unreadable ones."""
    indices: list[int] = []
    pixels: list[torch.Tensor] = []
    for index, record in enumerate(records):
        try:
            pixels.append(xray_to_tensor(load_xray(record.image), resolution))
            indices.append(index)
        except UnreadableImageError as exc:
            logger.warning("skipping %s", exc)
            skipped["unreadable image"] += 1
        if len(pixels) == ENCODE_BATCH:
            yield indices, torch.stack(pixels)
            indices, pixels = [], []
    if pixels:
        yield indices, torch.stack(pixels)


@torch.no_grad()
def _encode_latents(
    batches: Iterator[tuple[list[int], torch.Tensor]],
    vae: AutoencoderKL,
    kept: list[int],
) -> Iterator[dict[str, torch.Tensor]]:
    device, dtype = vae.device, vae.dtype
    for indices, pixels in batches:
        posterior = vae.encode(pixels.to(device, dtype)).latent_dist
        kept.extend(indices)
        yield {"mean": posterior.mean.float(), "std": posterior.std.float()}


@torch.no_grad()
def encode_text(text_encoder: CLIPTextModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Last hidden states of the text encoder (what the UNet attends to)."""
    return text_encoder(input_ids.to(text_encoder.device))[0]


def prepare_training_data(
    records: list[Record],
    *,
    tokenizer: CLIPTokenizer,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    resolution: int,
    cache_dir: Path,
    cache_latents: bool,
    cache_text: bool,
) -> PreparedData:
    """Check every image once; cache what the config asks for (reused if inputs match)."""
    skipped: Counter[str] = Counter()
    inputs = [(file_fingerprint(r.image), r.text) for r in records]
    kept: list[int] = []
    latents = None
    if cache_latents:
        key = fingerprint("latents", resolution, vae.config, str(vae.dtype), inputs)
        key = fingerprint(key, _weights_digest(vae))
        latents = ShardedTensors.open_if_current(cache_dir / "latents", key)
        if latents is None:
            unreadable: Counter[str] = Counter()
            batches = _encode_latents(_pixel_batches(records, resolution, unreadable), vae, kept)
            extra = {"kept": kept, "skipped": unreadable}  # filled in while the batches stream
            latents = ShardedTensors.write(
                cache_dir / "latents", batches, fingerprint=key, extra=extra
            )
        kept = list(latents.extra["kept"])
        skipped.update(latents.extra["skipped"])
    else:
        for indices, _ in _pixel_batches(records, resolution, skipped):
            kept.extend(indices)
    records = [records[i] for i in kept]
    if not records:
        raise TrainerError(f"no readable training images ({dict(skipped)})")

    input_ids, truncated = tokenize(tokenizer, [r.text for r in records])
    empty_ids = tokenize(tokenizer, [""])[0][0]
    text_embeddings = empty_embedding = None
    if cache_text:
        key = fingerprint(
            "text", text_encoder.config.to_dict(), str(text_encoder.dtype), inputs, kept
        )
        key = fingerprint(key, _weights_digest(text_encoder))
        text_embeddings = ShardedTensors.open_if_current(cache_dir / "text", key)
        if text_embeddings is None:
            batches = (
                {"hidden": encode_text(text_encoder, input_ids[i : i + ENCODE_BATCH]).float()}
                for i in range(0, len(input_ids), ENCODE_BATCH)
            )
            text_embeddings = ShardedTensors.write(cache_dir / "text", batches, fingerprint=key)
        empty_embedding = encode_text(text_encoder, empty_ids[None])[0].float().cpu()
    return PreparedData(
        records=records,
        input_ids=input_ids,
        empty_input_ids=empty_ids,
        latents=latents,
        text_embeddings=text_embeddings,
        empty_text_embedding=empty_embedding,
        skipped=skipped,
        truncated_texts=truncated,
    )


def _weights_digest(model: torch.nn.Module) -> str:
    """A cheap digest of a model's weights (sums per tensor), to notice different weights."""
    with torch.no_grad():
        sums = [round(float(p.double().sum()), 6) for p in model.parameters()]
    return fingerprint(sums)


class TrainingExamples(torch.utils.data.Dataset):
    """Rows for the loop: cached latents or pixels, and token ids or cached text embeddings."""

    def __init__(self, data: PreparedData, resolution: int) -> None:
        self.data = data
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.data.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor] | None:
        item: dict[str, torch.Tensor] = {"index": torch.tensor(index)}
        item["input_ids"] = self.data.input_ids[index]
        if self.data.latents is not None:
            row = self.data.latents.row(index)
            item["latent_mean"], item["latent_std"] = row["mean"], row["std"]
        else:
            try:
                image = load_xray(self.data.records[index].image)
            except UnreadableImageError as exc:
                logger.warning("dropping from batch: %s", exc)
                return None
            item["pixels"] = xray_to_tensor(image, self.resolution)
        if self.data.text_embeddings is not None:
            item["text_embedding"] = self.data.text_embeddings.row(index)["hidden"]
        return item


def collate_examples(items: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """Stack rows, leaving out any that failed to load (the batch gets smaller)."""
    rows = [item for item in items if item is not None]
    if not rows:
        return {}
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the same order after a resume."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to yield next."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
