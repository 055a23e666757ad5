"""The demo pipeline's weights, written without torch or numpy.

``registry/demo_pipeline/`` holds the tiny pipeline's configs and tokenizer files as
``registry-train init-base`` writes them, and ``tensors.json``: for every ``.safetensors`` file
its metadata, dtype and each tensor's name and shape in file order. ``write_weights`` fills
those tensors with a seeded random initialisation (norm scales 1, biases 0, other weights
N(0, 1/fan_in), embeddings N(0, 0.02)) using only the standard library, so ``seed-demo``
runs where only the ``server`` extra is installed. tests/registry/test_demo.py checks the
list against the pipeline diffusers builds and loads the written folder in diffusers.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
from pathlib import Path
from typing import Any

from client.shared.safetensors_header import read_header

DEMO_PIPELINE = Path(__file__).resolve().parent / "demo_pipeline"
TENSORS_FILE = "tensors.json"
_FORMATS = {"F16": ("e", 2), "F32": ("f", 4)}


def copy_demo_pipeline(out: Path, *, seed: int = 0) -> Path:
    """Write the tiny demo pipeline (configs, tokenizer, seeded weights) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for source in sorted(DEMO_PIPELINE.rglob("*")):
        relative = source.relative_to(DEMO_PIPELINE)
        if source.is_file() and relative.as_posix() != TENSORS_FILE:
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out / relative)
    layout = json.loads((DEMO_PIPELINE / TENSORS_FILE).read_text(encoding="utf-8"))
    rng = random.Random(seed)
    for path, spec in layout.items():
        write_weights(out / path, spec, rng)
    return out


def write_weights(path: Path, spec: dict[str, Any], rng: random.Random) -> None:
    """One safetensors file: ``spec`` is ``{"dtype", "metadata", "tensors": [[name, shape]]}``."""
    code, width = _FORMATS[spec["dtype"]]
    header: dict[str, Any] = {"__metadata__": spec["metadata"]} if spec.get("metadata") else {}
    blobs: list[bytes] = []
    offset = 0
    for name, shape in spec["tensors"]:
        values = _initial_values(name, shape, rng)
        blob = struct.pack(f"<{len(values)}{code}", *values)
        header[name] = {
            "dtype": spec["dtype"],
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.write(struct.pack("<Q", len(encoded)) + encoded)
        for blob in blobs:
            stream.write(blob)
    assert offset == sum(math.prod(s) for _, s in spec["tensors"]) * width


def _initial_values(name: str, shape: list[int], rng: random.Random) -> list[float]:
    count = math.prod(shape)
    if len(shape) == 1:
        return [1.0 if name.endswith(".weight") else 0.0] * count
    std = 0.02 if "embedding" in name else 1.0 / math.sqrt(math.prod(shape[1:]))
    return [rng.gauss(0.0, std) for _ in range(count)]


def describe_weights(folder: Path) -> dict[str, dict[str, Any]]:
    """The ``tensors.json`` entry of every ``.safetensors`` file under ``folder``."""
    layout: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*.safetensors")):
        with path.open("rb") as stream:
            header = read_header(stream, path.stat().st_size)
        dtypes = {tensor.dtype for tensor in header.tensors}
        if len(dtypes) != 1 or not dtypes <= set(_FORMATS):
            raise ValueError(f"{path}: one dtype of {sorted(_FORMATS)} expected, got {dtypes}")
        layout[path.relative_to(folder).as_posix()] = {
            "dtype": dtypes.pop(),
            "metadata": header.metadata or {},
            "tensors": [[t.name, list(t.shape)] for t in header.tensors],
        }
    return layout
