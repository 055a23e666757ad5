"""Tensors computed once per dataset (VAE latents, text embeddings), kept on disk in shards.

A cache folder holds ``shard-NNNNN.safetensors`` files and an ``index.json`` with a
fingerprint of what produced them; a cache whose fingerprint differs is rebuilt. Rows are
read lazily (memory-mapped), so datasets larger than memory work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SHARD_ROWS = 1024


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


class ShardedTensors:
    """Read-only rows of named tensors stored in safetensors shards."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text("utf-8"))
        self.count: int = index["count"]
        self.fingerprint: str = index["fingerprint"]
        self.extra: dict[str, Any] = index.get("extra", {})
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.count

    def row(self, index: int) -> dict[str, torch.Tensor]:
        """Return the tensors of one row."""
        shard, offset = divmod(index, SHARD_ROWS)
        handle = self._handles.get(shard)
        if handle is None:
            path = self.folder / f"shard-{shard:05d}.safetensors"
            handle = self._handles[shard] = safe_open(str(path), framework="pt")
        return {name: handle.get_slice(name)[offset] for name in handle.keys()}  # noqa: SIM118

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the files
        return {**self.__dict__, "_handles": {}}

    @staticmethod
    def open_if_current(folder: Path, expected: str) -> ShardedTensors | None:
        """Open the cache at ``folder`` if it is complete and made from the same inputs."""
        try:
            cache = ShardedTensors(folder)
        except (OSError, ValueError, KeyError):
            return None
        return cache if cache.fingerprint == expected else None

    @staticmethod
    def write(
        folder: Path,
        batches: Iterable[dict[str, torch.Tensor]],
        *,
        fingerprint: str,
        extra: dict[str, Any] | None = None,
    ) -> ShardedTensors:
        """Write batches of rows (dicts of equally long tensors) and return the cache."""
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        partial = folder.with_name(folder.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        pending: dict[str, list[torch.Tensor]] = {}
        pending_rows, shard, count = 0, 0, 0

        def flush() -> None:
            nonlocal pending, pending_rows, shard
            if pending_rows:
                tensors = {k: torch.cat(v)[:SHARD_ROWS].contiguous() for k, v in pending.items()}
                save_file(tensors, str(partial / f"shard-{shard:05d}.safetensors"))
                shard += 1
            pending, pending_rows = {}, 0

        for batch in batches:
            rows = len(next(iter(batch.values())))
            start = 0
            while start < rows:
                take = min(rows - start, SHARD_ROWS - pending_rows)
                for name, tensor in batch.items():
                    pending.setdefault(name, []).append(tensor[start : start + take].cpu())
                pending_rows += take
                start += take
                count += take
                if pending_rows == SHARD_ROWS:
                    flush()
        flush()
        index = {"count": count, "fingerprint": fingerprint, "extra": extra or {}}
        (partial / "index.json").write_text(json.dumps(index), "utf-8")
        partial.rename(folder)  # a cache is visible only once complete
        return ShardedTensors(folder)
