"""Tensors computed once per dataset (VAE latents, text embeddings), kept on disk in chunks.

The inputs are cut into chunks of a fixed number of records; chunk ``c`` is written as
``chunk-<c>.safetensors`` whose metadata holds the fingerprint of exactly what produced it
(the records' files and texts, the model and its weights). So the work

- splits across ranks (rank ``r`` of ``w`` computes the chunks ``c % w == r``),
- resumes after a crash (complete chunks with the right fingerprint are kept; a chunk is
  written under a temporary name and renamed, so a half-written one never counts), and
- is redone only where something changed (one edited record recomputes one chunk).

Rows are read lazily (memory-mapped), so datasets larger than memory work.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from trainer.errors import TrainerError

KEY_METADATA = "fingerprint"
EXTRA_METADATA = "extra"


class CacheError(TrainerError):
    """A cache chunk that should exist after every rank finished, but does not."""


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (paths, sizes, configs, texts)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def file_fingerprint(path: Path) -> list[Any]:
    """Name, size and modification time: enough to notice a replaced file."""
    stat = Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def chunk_path(folder: Path, chunk: int) -> Path:
    """Where chunk ``chunk`` of a cache lives."""
    return Path(folder) / f"chunk-{chunk:05d}.safetensors"


def chunk_fingerprint(path: Path) -> str | None:
    """The fingerprint a complete chunk file was written with (None if missing or broken)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get(KEY_METADATA)
    except (OSError, ValueError, RuntimeError):  # missing, truncated, not safetensors
        return None


@dataclass
class ChunkWork:
    """What one rank did for one cache: chunk numbers computed, and how many it reused."""

    computed: list[int]
    reused: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"chunks_computed": self.computed, "chunks_reused": self.reused}


def chunks_to_compute(folder: Path, keys: list[str], *, rank: int, world: int) -> ChunkWork:
    """This rank's chunks whose file is missing or was made from other inputs."""
    mine = range(rank, len(keys), world)
    todo = [c for c in mine if chunk_fingerprint(chunk_path(folder, c)) != keys[c]]
    return ChunkWork(computed=todo, reused=len(mine) - len(todo))


def write_chunk(
    folder: Path, chunk: int, key: str, tensors: dict[str, torch.Tensor], extra: Any
) -> Path:
    """Write one chunk atomically (temporary name, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = chunk_path(folder, chunk)
    partial = final.with_name(f"{final.name}.{os.getpid()}.partial")
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    metadata = {KEY_METADATA: key, EXTRA_METADATA: json.dumps(extra)}
    save_file(contiguous, str(partial), metadata=metadata)
    os.replace(partial, final)
    return final


def remove_stale_chunks(folder: Path, count: int) -> None:
    """Delete chunk files past ``count`` and leftovers of interrupted writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        leftover = path.name.endswith(".partial")
        if leftover or (path.name.startswith("chunk-") and int(path.name[6:11]) >= count):
            path.unlink(missing_ok=True)


class ChunkedTensors:
    """Read-only rows of named tensors stored in the chunk files of one cache."""

    def __init__(self, folder: Path, keys: list[str]) -> None:
        self.folder = Path(folder)
        self.keys = list(keys)
        self.extras: list[Any] = []
        self.starts: list[int] = []
        total = 0
        for chunk, key in enumerate(self.keys):
            path = chunk_path(self.folder, chunk)
            if chunk_fingerprint(path) != key:
                raise CacheError(f"{path}: missing or made from other inputs; did a rank fail?")
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())  # noqa: SIM118 (a safe_open handle, not a dict)
                rows = handle.get_slice(names[0]).get_shape()[0] if names else 0
                self.extras.append(json.loads(handle.metadata()[EXTRA_METADATA]))
            self.starts.append(total)
            total += rows
        self.count = total
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.count

    def _handle(self, chunk: int) -> Any:
        handle = self._handles.get(chunk)
        if handle is None:
            path = chunk_path(self.folder, chunk)
            handle = self._handles[chunk] = safe_open(str(path), framework="pt")
        return handle

    def row(self, index: int) -> dict[str, torch.Tensor]:
        """Return the tensors of one row."""
        # The last chunk starting at or before the row: chunks that kept no rows share
        # their start with the next one, so bisect_right steps over them.
        chunk = bisect.bisect_right(self.starts, index) - 1
        handle, offset = self._handle(chunk), index - self.starts[chunk]
        return {name: handle.get_slice(name)[offset] for name in handle.keys()}  # noqa: SIM118

    def column(self, name: str) -> torch.Tensor:
        """One tensor over all rows, in order (e.g. the kept record indices)."""
        parts = []
        for chunk in range(len(self.keys)):
            handle = self._handle(chunk)
            if name in handle.keys():  # noqa: SIM118
                parts.append(handle.get_tensor(name))
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the files
        return {**self.__dict__, "_handles": {}}


def chunk_slices(count: int, chunk_size: int) -> list[range]:
    """Record ranges of each chunk: ``[0, size)``, ``[size, 2 size)``, ..."""
    return [range(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


def batched(indices: Iterable[int], size: int) -> Iterator[list[int]]:
    """Consecutive lists of at most ``size`` indices."""
    batch: list[int] = []
    for index in indices:
        batch.append(index)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
