"""Export a finished run as a registry-ready diffusers folder with a model card and samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError
from trainer.evaluation.privacy import PAIRS_FILE
from trainer.inference import load_for_inference, resolve_inference
from trainer.lora import LORA_WEIGHTS_NAME
from trainer.model_card import DEFAULT_LICENSE, CardTexts, front_matter, render_card
from trainer.pipeline_files import make_portable
from trainer.sampling import generate_images, image_grid

EXPORTED_SUFFIXES = (".json", ".safetensors", ".txt")
SAMPLES_FILE = "samples.png"
ADAPTER_DIR = "adapter"
EVALUATION_FILE = "evaluation.json"


class ExportError(TrainerError):
    """A run that cannot be exported, with the reason."""


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file() or not (run_dir / "pipeline" / "model_index.json").is_file():
        raise ExportError(f"{run_dir}: not a finished fit run (no summary.json or pipeline/)")
    return json.loads(path.read_text("utf-8"))


def _copy_weights(source: Path, target: Path) -> None:
    """Copy a diffusers folder, refusing any file that is not config, weights or vocabulary."""
    for path in sorted(source.rglob("*")):
        if path.is_dir():
            continue
        if path.suffix not in EXPORTED_SUFFIXES:
            raise ExportError(f"{path}: refusing to export a {path.suffix or 'suffix-less'} file")
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def export_run(
    run_dir: Path,
    out_dir: Path,
    *,
    tier: str = "credentialed",
    dua: str = "physionet-credentialed-1.5.0",
    base_ref: str | None = None,
    license_id: str = DEFAULT_LICENSE,
    include_adapter: bool = False,
    texts: CardTexts | None = None,
    sample_prompts: list[str] | None = None,
    sample_steps: int = 20,
    title: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    include_privacy_pairs: bool = False,
) -> Path:
    """Write ``out_dir``: safetensors pipeline (LoRA merged), README.md card, samples.png.

    ``include_privacy_pairs`` also publishes the privacy check's side-by-side PNG of
    generated images and their nearest training images: only when the institution has
    looked at it and approves (it shows training images).

    The weights are written so every supported transformers and diffusers version loads
    them alike, and without any safety checker (see pipeline_files.py), even for runs made
    by older versions of this trainer.
    """
    settings = resolve_inference(device, dtype)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    summary = _read_summary(run_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} is not empty; export into a new folder")
    lora = summary["config"]["mode"] == "lora"
    if include_adapter and not lora:
        raise ExportError("--adapter applies to LoRA runs only; this run fine-tuned the UNet")
    _copy_weights(run_dir / "pipeline", out_dir)
    make_portable(out_dir)
    if include_adapter:
        (out_dir / ADAPTER_DIR).mkdir()
        shutil.copyfile(
            run_dir / "lora" / LORA_WEIGHTS_NAME, out_dir / ADAPTER_DIR / LORA_WEIGHTS_NAME
        )

    pipeline = load_for_inference(out_dir, settings)
    prompts = sample_prompts or summary.get("validation_prompts") or ["No acute process."]
    images = generate_images(
        pipeline,
        prompts,
        resolution=summary["config"]["resolution"],
        steps=sample_steps,
        seed=summary["config"]["seed"],
        settings=settings,
    )
    image_grid(images).save(out_dir / SAMPLES_FILE)

    evaluation_path = run_dir / EVALUATION_FILE
    evaluation: dict[str, Any] | str = (
        json.loads(evaluation_path.read_text("utf-8"))
        if evaluation_path.is_file()
        else "Not evaluated yet; run `registry-train evaluate` on the run before exporting."
    )
    base_name = base_ref or summary["base"].get("registry_ref")
    base_name = base_name or f"local:{Path(summary['base']['path']).name}"
    card = front_matter(
        summary,
        tier=tier,
        dua=dua,
        license_id=license_id,
        base_ref=base_name,
        method="LoRA, merged into the UNet" if lora else "full fine-tune",
        evaluation=evaluation,
        texts=texts or CardTexts(),
        samples_file=SAMPLES_FILE,
    )
    card["sample_prompts"] = prompts
    pairs = run_dir / PAIRS_FILE
    if include_privacy_pairs:
        if not pairs.is_file():
            raise ExportError(f"{pairs} does not exist; run `registry-train evaluate --privacy`")
        shutil.copyfile(pairs, out_dir / PAIRS_FILE)
        card["privacy_pairs"] = PAIRS_FILE
    title = title or f"Chest X-ray diffusion model fine-tuned from {base_name}"
    (out_dir / "README.md").write_text(render_card(card, title), "utf-8")
    return out_dir
