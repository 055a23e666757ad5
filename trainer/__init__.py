"""Fine-tune chest X-ray diffusion models and export them for the registry.

The public API, imported lazily (torch and diffusers load only when used)::

    from trainer import FitConfig, fit, export_run, evaluate, generate_phantoms
    from trainer import build_tiny_pipeline, import_mimic
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FitConfig": "trainer.config",
    "load_fit_config": "trainer.config",
    "fit": "trainer.training",
    "FitResult": "trainer.training",
    "export_run": "trainer.export",
    "evaluate": "trainer.evaluate",
    "generate_phantoms": "trainer.phantoms",
    "build_tiny_pipeline": "trainer.tiny",
    "build_base_pipeline": "trainer.tiny",
    "import_mimic": "trainer.mimic",
    "read_manifest": "trainer.manifest",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
