"""What a run reports about itself: base lineage, dataset counts, speed and memory."""

from __future__ import annotations

import json
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from trainer.base_model import BaseModel
from trainer.data import PreparedData
from trainer.manifest import Manifest


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write indented JSON."""
    path.write_text(json.dumps(value, indent=2, default=str) + "\n", "utf-8")


def base_info(base: BaseModel) -> dict[str, Any]:
    """Where the base came from (a registry reference gives the lineage)."""
    info: dict[str, Any] = {"path": str(base.path), "registry_ref": base.registry_ref}
    index = base.path / "model_index.json"
    if index.is_file():
        info["diffusers_version"] = json.loads(index.read_text("utf-8")).get("_diffusers_version")
    return info


def dataset_info(manifest: Manifest, data: PreparedData, selected: int) -> dict[str, Any]:
    """What the data was, and how many pairs were offered, used, skipped (why), truncated."""
    skipped = Counter(manifest.skipped)
    skipped.update(data.skipped)
    return {
        "name": manifest.dataset,
        "description": manifest.description,
        "manifest": manifest.path.name,
        "examples_selected": selected,
        "examples_used": len(data.records),
        "skipped": dict(skipped),
        "texts_truncated_to_77_tokens": data.truncated_texts,
        "patients": len({r.patient_id for r in data.records if r.patient_id}),
    }


def peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
