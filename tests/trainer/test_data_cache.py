"""Preparing data: decoded by workers, cached in chunks that resume, skips listed, JPEG drafts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.trainer.test_bad_input import broken_dataset
from trainer.images import load_xray, xray_to_tensor
from trainer.training import fit


def cached_latents(run: Path) -> torch.Tensor:
    from trainer.encoding_cache import ChunkedTensors, chunk_fingerprint

    folder = run / "cache" / "latents"
    chunks = sorted(folder.glob("chunk-*.safetensors"))
    cache = ChunkedTensors(folder, [chunk_fingerprint(p) for p in chunks])
    return torch.stack([cache.row(i)["mean"] for i in range(len(cache))])


def test_caching_is_shared_by_workers_and_resumes_chunk_by_chunk(quick_config, tmp_path: Path):
    """Caching was one process on the main rank: MIMIC's 243k images took ~14 h before step 1."""
    settings = dict(cache_chunk_size=8, checkpointing_steps=1, max_train_steps=1)
    first = fit(quick_config(output_dir=tmp_path / "run", cache_num_workers=2, **settings))
    used = first.summary["dataset"]["examples_used"]
    chunks = -(-used // 8)
    assert first.summary["cache"]["images"] == {
        "chunks_computed": list(range(chunks)),
        "chunks_reused": 0,
    }
    single = fit(quick_config(output_dir=tmp_path / "single", cache_num_workers=0, **settings))
    torch.testing.assert_close(cached_latents(first.output_dir), cached_latents(single.output_dir))

    # A crash lost two chunks: the resumed run computes those two and reuses the rest.
    for chunk in (1, chunks - 1):
        (first.output_dir / "cache" / "latents" / f"chunk-{chunk:05d}.safetensors").unlink()
    before = cached_latents(single.output_dir)
    resumed = fit(
        quick_config(output_dir=tmp_path / "run", resume_from_checkpoint="latest",
                     cache_num_workers=2, **{**settings, "max_train_steps": 2})
    )  # fmt: skip
    assert resumed.summary["cache"]["images"] == {
        "chunks_computed": [1, chunks - 1],
        "chunks_reused": chunks - 2,
    }
    torch.testing.assert_close(cached_latents(first.output_dir), before)


def test_the_run_lists_every_skipped_image_and_why(
    quick_config, phantom_manifest: Path, tmp_path: Path
) -> None:
    manifest = broken_dataset(phantom_manifest, tmp_path / "data")
    result = fit(quick_config(train_manifest=manifest, max_train_steps=1))
    lines = (result.output_dir / "skipped.jsonl").read_text().splitlines()
    skipped = {Path(row["image"]).name: row["reason"] for row in map(json.loads, lines)}
    blank = next(name for name, why in skipped.items() if why == "empty text")
    assert skipped == {
        blank: "empty text",
        "does-not-exist.png": "image missing",
        "secret.png": "image outside the manifest's folder",
        "garbage.png": "unreadable image",
        "truncated.png": "unreadable image",
    }
    assert result.summary["dataset"]["skipped"]["unreadable image"] == 2


def test_large_jpegs_are_decoded_at_a_reduced_scale(tmp_path: Path) -> None:
    """A 3000 px MIMIC JPEG trained at 512 px need not be decoded at full size."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1536, 0:2048]
    pixels = (127 + 60 * np.sin(x / 90) * np.cos(y / 70) + rng.normal(0, 3, x.shape)).clip(0, 255)
    path = tmp_path / "big.jpg"
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)

    draft = load_xray(path, min_size=256)
    assert draft.size == (512, 384)  # 1/4 scale: the smallest that is still >= 256 px
    full = xray_to_tensor(load_xray(path), 256)
    assert (xray_to_tensor(draft, 256) - full).abs().mean() < 0.01
