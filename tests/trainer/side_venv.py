"""A cached virtual environment with the lowest library versions ``pyproject.toml`` allows.

Built once per set of versions under ``~/.cache/roentgen-registry/side-venvs/`` (about a
minute: torch comes from the local wheel, the rest from the package index) and reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
VENVS = CACHE / "roentgen-registry" / "side-venvs"
# What loading an export needs (the [generate] extra, plus the hub client it pulls with),
# and what stock diffusers needs to load a LoRA adapter shipped beside it (peft).
FLOOR_PACKAGES = (
    "transformers", "diffusers", "huggingface_hub", "safetensors", "numpy", "pillow",
    "peft", "accelerate",
)  # fmt: skip


class SideVenvError(RuntimeError):
    """The side environment could not be built (no package index, a version that is gone)."""


def floor_versions() -> dict[str, str]:
    """``name: lowest version`` for FLOOR_PACKAGES, from pyproject.toml's ``>=`` bounds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += extra
    floors = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement)
        if match and match.group(1).lower().replace("-", "_") in FLOOR_PACKAGES:
            floors[match.group(1).lower().replace("-", "_")] = match.group(2)
    missing = set(FLOOR_PACKAGES) - set(floors)
    if missing:
        raise SideVenvError(f"pyproject.toml gives no lower bound for {sorted(missing)}")
    return floors


def torch_pin() -> str:
    """The torch the Makefile installs first (the local CPU wheel)."""
    match = re.search(r"pip install --quiet (torch==\S+)", (ROOT / "Makefile").read_text("utf-8"))
    if match is None:
        raise SideVenvError("the Makefile no longer pins torch")
    return match.group(1)


def side_venv_python(name: str = "lowest") -> tuple[Path, dict[str, str]]:
    """The side environment's python (built if needed) and the versions it holds."""
    pins = {"torch": torch_pin(), **{k: f"{k}=={v}" for k, v in floor_versions().items()}}
    key = hashlib.sha256(repr((sys.version_info[:2], sorted(pins.items()))).encode()).hexdigest()
    folder = VENVS / f"{name}-{key[:12]}"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if not (folder / ".complete").is_file():
            _build(folder, pins)
    return folder / "bin" / "python", pins


def _build(folder: Path, pins: dict[str, str]) -> None:
    """Install into ``folder`` (venvs cannot move); only ``.complete`` marks it usable."""
    shutil.rmtree(folder, ignore_errors=True)
    python = str(folder / "bin" / "python")
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [python, "-m", "pip", "install", "--quiet", pins["torch"]],
        [python, "-m", "pip", "install", "--quiet",
         *(pin for name, pin in pins.items() if name != "torch")],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise SideVenvError(f"{' '.join(step[3:])} failed:\n{done.stderr[-2000:]}")
    (folder / ".complete").write_text("\n".join(pins.values()) + "\n", "utf-8")
