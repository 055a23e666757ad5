"""Training data: decode and check images once, cache latents and text embeddings, batch.

Bad input never stops an epoch: unreadable images are found (and listed) while preparing,
before the first step; an image that breaks later is dropped from its batch. Preparing is
split across ranks and decoded by DataLoader workers; see encoding_cache.py for how chunks
are shared out, resumed and reused.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextModel, CLIPTokenizer

from trainer.encoding_cache import (
    ChunkedTensors,
    batched,
    chunk_slices,
    chunks_to_compute,
    file_fingerprint,
    fingerprint,
    remove_stale_chunks,
    write_chunk,
)
from trainer.errors import TrainerError
from trainer.images import UnreadableImageError, load_xray, xray_to_tensor
from trainer.manifest import Record

logger = logging.getLogger(__name__)
ENCODE_BATCH = 16
UNREADABLE = "unreadable image"
MAX_DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class Ranks:
    """Which share of the preparation this process does, and how to wait for the others."""

    index: int = 0
    count: int = 1
    local_count: int = 1
    barrier: Callable[[], None] = lambda: None

    @property
    def is_main(self) -> bool:
        """The process that cleans up after everyone."""
        return self.index == 0


def default_workers(local_processes: int = 1) -> int:
    """Decoding workers per process: the cores this process can have, less one, up to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(MAX_DEFAULT_WORKERS, (cores or 1) // max(1, local_processes) - 1))


@dataclass
class PreparedData:
    """Checked records with their token ids and, when cached, latents and text embeddings."""

    records: list[Record]
    input_ids: torch.Tensor  # (N, 77)
    empty_input_ids: torch.Tensor  # (77,), for caption dropout
    latents: ChunkedTensors | None = None  # rows: mean, std of the VAE posterior
    text_embeddings: ChunkedTensors | None = None  # rows: hidden
    empty_text_embedding: torch.Tensor | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    truncated_texts: int = 0
    work: dict[str, Any] = field(default_factory=dict)  # what this rank computed or reused


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


class _DecodedImages(torch.utils.data.Dataset):
    """Record index -> (index, pixels or None, why not); runs in DataLoader workers."""

    def __init__(self, records: list[Record], resolution: int) -> None:
        self.records, self.resolution = records, resolution

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = load_xray(self.records[index].image, min_size=self.resolution)
        except UnreadableImageError as exc:
            return index, None, str(exc)
        return index, xray_to_tensor(image, self.resolution), None


def _as_list(items: list[Any]) -> list[Any]:
    return items


def _decoded_batches(
    records: list[Record], batches: list[list[int]], resolution: int, workers: int
) -> Iterator[list[tuple[int, torch.Tensor | None, str | None]]]:
    """Decode the given batches of record indices in order, ``workers`` processes at a time."""
    if not batches:
        return iter(())
    loader = torch.utils.data.DataLoader(
        _DecodedImages(records, resolution),
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_as_list,
    )
    return iter(loader)


def _cache_images(
    folder: Path,
    keys: list[str],
    slices: list[range],
    records: list[Record],
    *,
    resolution: int,
    workers: int,
    ranks: Ranks,
    vae: AutoencoderKL | None,
) -> dict[str, Any]:
    """Decode this rank's missing chunks; store kept indices (and latents when a VAE is given)."""
    work = chunks_to_compute(folder, keys, rank=ranks.index, world=ranks.count)
    plan = [b for c in work.computed for b in batched(slices[c], ENCODE_BATCH)]
    decoded = _decoded_batches(records, plan, resolution, workers)
    for chunk in work.computed:
        kept: list[int] = []
        means: list[torch.Tensor] = []
        stds: list[torch.Tensor] = []
        skipped: list[dict[str, str]] = []
        for _ in batched(slices[chunk], ENCODE_BATCH):
            items = next(decoded)
            for index, _pixels, why in items:
                if why is not None:
                    logger.warning("skipping %s", why)
                    image = str(records[index].image)
                    skipped.append({"image": image, "reason": UNREADABLE, "detail": why})
            good = [(index, pixels) for index, pixels, _ in items if pixels is not None]
            kept.extend(index for index, _ in good)
            if good and vae is not None:
                with torch.no_grad():
                    pixels = torch.stack([p for _, p in good]).to(vae.device, vae.dtype)
                    posterior = vae.encode(pixels).latent_dist
                means.append(posterior.mean.float().cpu())
                stds.append(posterior.std.float().cpu())
        tensors = {"index": torch.tensor(kept, dtype=torch.long)}
        if means:
            tensors.update(mean=torch.cat(means), std=torch.cat(stds))
        write_chunk(folder, chunk, keys[chunk], tensors, {"skipped": skipped})
    return work.to_dict()


def _cache_text(
    folder: Path,
    keys: list[str],
    slices: list[range],
    input_ids: torch.Tensor,
    text_encoder: CLIPTextModel,
    ranks: Ranks,
) -> dict[str, Any]:
    """Encode this rank's missing chunks of texts with the (frozen) text encoder."""
    work = chunks_to_compute(folder, keys, rank=ranks.index, world=ranks.count)
    for chunk in work.computed:
        rows = list(slices[chunk])
        hidden = [
            encode_text(text_encoder, input_ids[batch]).float().cpu()
            for batch in batched(rows, ENCODE_BATCH)
        ]
        write_chunk(folder, chunk, keys[chunk], {"hidden": torch.cat(hidden)}, {})
    return work.to_dict()


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
    chunk_size: int = 1024,
    workers: int = 0,
    ranks: Ranks = Ranks(),
) -> PreparedData:
    """Check every image once; cache what the config asks for (reused where inputs match).

    Every rank calls this; each computes its share of the chunks, then all wait for each
    other and read the whole cache.
    """
    slices = chunk_slices(len(records), chunk_size)
    files = [file_fingerprint(r.image) for r in records]
    if cache_latents:
        model_key = fingerprint("latents", resolution, vae.config, str(vae.dtype))
        model_key = fingerprint(model_key, _weights_digest(vae))
        folder = cache_dir / "latents"
    else:
        model_key, folder = fingerprint("readable", resolution), cache_dir / "readable"
    keys = [fingerprint(model_key, [files[i] for i in s]) for s in slices]
    work = {
        "images": _cache_images(
            folder,
            keys,
            slices,
            records,
            resolution=resolution,
            workers=workers,
            ranks=ranks,
            vae=vae if cache_latents else None,
        )
    }
    ranks.barrier()
    images = ChunkedTensors(folder, keys)
    if ranks.is_main:
        remove_stale_chunks(folder, len(keys))
    kept = images.column("index").tolist()
    skipped_images = [entry for extra in images.extras for entry in extra["skipped"]]
    skipped = Counter(entry["reason"] for entry in skipped_images)
    records = [records[i] for i in kept]
    if not records:
        raise TrainerError(f"no readable training images ({dict(skipped)})")

    input_ids, truncated = tokenize(tokenizer, [r.text for r in records])
    empty_ids = tokenize(tokenizer, [""])[0][0]
    text_embeddings = empty_embedding = None
    if cache_text:
        text_key = fingerprint(
            "text", text_encoder.config.to_dict(), str(text_encoder.dtype), tokenizer.name_or_path
        )
        text_key = fingerprint(text_key, _weights_digest(text_encoder))
        text_slices = chunk_slices(len(records), chunk_size)
        text_keys = [
            fingerprint(text_key, input_ids[s.start : s.stop].tolist()) for s in text_slices
        ]
        text_folder = cache_dir / "text"
        work["text"] = _cache_text(
            text_folder, text_keys, text_slices, input_ids, text_encoder, ranks
        )
        ranks.barrier()
        text_embeddings = ChunkedTensors(text_folder, text_keys)
        if ranks.is_main:
            remove_stale_chunks(text_folder, len(text_keys))
        empty_embedding = encode_text(text_encoder, empty_ids[None])[0].float().cpu()
    return PreparedData(
        records=records,
        input_ids=input_ids,
        empty_input_ids=empty_ids,
        latents=images if cache_latents else None,
        text_embeddings=text_embeddings,
        empty_text_embedding=empty_embedding,
        skipped=skipped,
        skipped_images=skipped_images,
        truncated_texts=truncated,
        work=work,
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
                image = load_xray(self.data.records[index].image, min_size=self.resolution)
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
