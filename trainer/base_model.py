"""Where a base model comes from: a local diffusers folder or a registry reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainerError

REGISTRY_REF = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w.-]+)?\Z")


class BaseModelError(TrainerError):
    """A base model that is neither a diffusers folder nor a registry reference."""


@dataclass(frozen=True)
class BaseModel:
    """A base pipeline folder on this machine, and the registry reference it came from."""

    path: Path
    registry_ref: str | None = None


def resolve_base_model(base: str) -> BaseModel:
    """Use a local folder as is; pull ``NS/NAME[@REV]`` from the registry with the client."""
    path = Path(base).expanduser()
    if (path / "model_index.json").is_file():
        return BaseModel(path=path.resolve())
    if path.exists():
        raise BaseModelError(f"{base}: not a diffusers pipeline folder (no model_index.json)")
    if not REGISTRY_REF.match(base):
        raise BaseModelError(f"{base}: no such folder, and not a registry reference NS/NAME[@REV]")
    from client.api import RegistryClient  # needs network and credentials: only when asked

    pulled = RegistryClient().pull(base)
    return BaseModel(path=Path(pulled.path), registry_ref=base)
