"""``evaluation.json``: one file, one section per evaluation, merged as each one runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from trainer.phantoms import PHANTOM_DATASET

EVALUATION_FILE = "evaluation.json"
SECTIONS = ("utility", "privacy", "diversity", "fidelity")


def read_results(out_dir: Path) -> dict[str, Any]:
    """What ``out_dir/evaluation.json`` holds so far (empty when there is none)."""
    path = out_dir / EVALUATION_FILE
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def merge_results(out_dir: Path, sections: dict[str, Any], drop: tuple[str, ...] = ()) -> Path:
    """Update ``out_dir/evaluation.json`` with ``sections`` (other sections are kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = read_results(out_dir)
    for key in drop:
        results.pop(key, None)
    results.update(sections)
    path = out_dir / EVALUATION_FILE
    path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return path


def training_datasets(model: Path) -> list[str] | None:
    """The datasets a model declares it was trained on: its run summary, else its card."""
    summary = model / "summary.json"
    if summary.is_file():
        name = json.loads(summary.read_text("utf-8")).get("dataset", {}).get("name")
        return [name] if name else []
    card = model / "README.md"
    if card.is_file():
        parts = card.read_text("utf-8").split("---", 2)
        if len(parts) == 3:
            front = yaml.safe_load(parts[1]) or {}
            datasets = front.get("datasets") if isinstance(front, dict) else None
            if isinstance(datasets, str):
                return [datasets]
            if isinstance(datasets, list):
                return [str(d) for d in datasets]
    return None


def phantom_trained(model: Path) -> bool:
    """Whether the run summary or the card declares training on synthetic phantoms."""
    return PHANTOM_DATASET in (training_datasets(model) or [])
