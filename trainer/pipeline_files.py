"""Pipeline folders that every supported diffusers and transformers version reads alike.

- The text encoder's weights use the ``text_model.`` key layout: transformers 5 writes keys
  without that prefix, which transformers 4.x does not recognise (it then initialises the
  encoder randomly and only warns); transformers 5 reads the prefixed layout too.
- No safety checker: a base's NSFW checker (a second CLIP model) blacks out radiographs it
  misreads and would ship inside a medical export; exports never carry one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

TEXT_MODEL_PREFIX = "text_model."
SAFETY_PARTS = ("safety_checker", "feature_extractor")
NO_SAFETY_CHECKER: dict[str, Any] = {
    "safety_checker": None,
    "feature_extractor": None,
    "requires_safety_checker": False,
}


def save_pipeline(pipeline: Any, out_dir: Path) -> Path:
    """``save_pretrained`` as safetensors, then make the folder portable."""
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    make_portable(out_dir)
    return Path(out_dir)


def make_portable(folder: Path) -> None:
    """Drop any safety checker and write text encoders in the layout all versions read."""
    drop_safety_checker(folder)
    text_encoder = Path(folder) / "text_encoder"
    config = text_encoder / "config.json"
    # Only CLIPTextModel keeps everything under text_model (with a projection it does not).
    if config.is_file() and json.loads(config.read_text("utf-8")).get("architectures") == [
        "CLIPTextModel"
    ]:
        prefix_text_encoder_keys(text_encoder)


def drop_safety_checker(folder: Path) -> bool:
    """Remove the safety checker and its image processor from a pipeline folder."""
    folder = Path(folder)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text("utf-8"))
    changed = False
    for part in SAFETY_PARTS:
        if part in index and index[part] != [None, None]:
            index[part] = [None, None]
            changed = True
        if (folder / part).exists():
            shutil.rmtree(folder / part)
            changed = True
    if index.get("requires_safety_checker"):
        index["requires_safety_checker"] = False
        changed = True
    if changed:
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", "utf-8")
    return changed


def _prefixed(key: str) -> str:
    return key if key.startswith(TEXT_MODEL_PREFIX) else TEXT_MODEL_PREFIX + key


def prefix_text_encoder_keys(text_encoder_dir: Path) -> bool:
    """Rewrite a CLIP text encoder's safetensors with ``text_model.`` keys; False if already."""
    changed = False
    for path in sorted(Path(text_encoder_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())  # noqa: SIM118 (a safe_open handle, not a dict)
            metadata = handle.metadata() or {"format": "pt"}
        if all(key.startswith(TEXT_MODEL_PREFIX) for key in keys):
            continue
        tensors = {_prefixed(key): tensor for key, tensor in load_file(str(path)).items()}
        partial = path.with_name(path.name + ".partial")
        save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
        changed = True
    for index_path in Path(text_encoder_dir).glob("*.safetensors.index.json"):
        index = json.loads(index_path.read_text("utf-8"))
        index["weight_map"] = {_prefixed(k): v for k, v in index["weight_map"].items()}
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", "utf-8")
    return changed
