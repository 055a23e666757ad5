"""The exported model card: ``README.md`` with the YAML front matter the registry requires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

DEFAULT_LICENSE = "other"
PHYSIONET_LICENSE_NAME = "physionet-credentialed-health-data-license-1.5.0"
HYPERPARAMETERS = (
    "mode",
    "resolution",
    "train_batch_size",
    "gradient_accumulation_steps",
    "max_train_steps",
    "learning_rate",
    "lr_scheduler",
    "lr_warmup_steps",
    "adam_weight_decay",
    "mixed_precision",
    "train_text_encoder",
    "lora_rank",
    "lora_alpha",
    "use_ema",
    "ema_decay",
    "snr_gamma",
    "noise_offset",
    "text_dropout",
    "seed",
)


@dataclass(frozen=True)
class CardTexts:
    """The prose fields of a card; the defaults suit a research model of chest X-rays."""

    intended_use: str = (
        "Research on synthetic chest X-ray generation: data augmentation, method development "
        "and education, by people who are themselves allowed to access the training data."
    )
    out_of_scope_use: str = (
        "Any clinical or diagnostic use; re-identification of patients; sharing generated "
        "images or weights with people not bound by the data use agreement."
    )
    limitations: str = (
        "Generated images may contain anatomically implausible structures and may not show "
        "findings faithfully; texts longer than 77 CLIP tokens were truncated in training; "
        "biases of the training population carry over. Not validated for any clinical task."
    )


def front_matter(
    summary: dict[str, Any],
    *,
    tier: str,
    dua: str,
    license_id: str,
    base_ref: str,
    method: str,
    evaluation: dict[str, Any] | str,
    texts: CardTexts,
    samples_file: str,
) -> dict[str, Any]:
    """Every field the registry requires, plus lineage, hyper-parameters and metrics."""
    config, dataset = summary["config"], summary["dataset"]
    name = dataset.get("name") or "local-image-report-pairs"
    card: dict[str, Any] = {
        "license": license_id,
        "base_model": base_ref,
        "base_model_relation": "finetune",
        "training_method": method,
        "datasets": [name],
        "access_tier": tier,
        "dua": dua,
        "library_name": "diffusers",
        "pipeline_tag": "text-to-image",
        "tags": ["chest-x-ray", "radiology", "stable-diffusion", "text-to-image", "synthetic"],
        "intended_use": texts.intended_use,
        "out_of_scope_use": texts.out_of_scope_use,
        "limitations": texts.limitations,
        "training_data": {
            "dataset": name,
            "description": dataset.get("description") or "Local image-report pairs.",
            "examples_used": dataset["examples_used"],
            "patients": dataset["patients"],
            "skipped": dataset["skipped"],
            "texts_truncated_to_77_tokens": dataset["texts_truncated_to_77_tokens"],
        },
        "evaluation": evaluation,
        "lineage": {
            "base_model": base_ref,
            "base_revision": base_ref.split("@", 1)[1] if "@" in base_ref else None,
            "relation": "finetune",
        },
        "hyperparameters": {key: config.get(key) for key in HYPERPARAMETERS},
        "metrics": {
            "steps": summary["global_step"],
            "first_loss": summary["metrics"]["first_loss"],
            "final_loss": summary["metrics"]["final_loss"],
        },
        "samples": samples_file,
    }
    if license_id == DEFAULT_LICENSE and dua.startswith("physionet"):
        card["license_name"] = PHYSIONET_LICENSE_NAME
    return card


def render_card(card: dict[str, Any], title: str) -> str:
    """The README: front matter, then a short human-readable description."""
    front = yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=100)
    training = card["training_data"]
    evaluation = card["evaluation"]
    evaluation_text = (
        evaluation if isinstance(evaluation, str) else yaml.safe_dump(evaluation, sort_keys=False)
    )
    return f"""---
{front}---
# {title}

A Stable Diffusion pipeline fine-tuned ({card["training_method"]}) from
`{card["base_model"]}` on {training["examples_used"]} image-report pairs of
`{training["dataset"]}`. {training["description"]}

Access: tier `{card["access_tier"]}`, data use agreement `{card["dua"]}`.

![samples]({card["samples"]})

## Intended use
{card["intended_use"]}

## Out of scope
{card["out_of_scope_use"]}

## Limitations
{card["limitations"]}

## Evaluation
```
{evaluation_text.strip()}
```

## Use
```python
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("path/to/this/folder")
image = pipe("Small left pleural effusion.", guidance_scale=3.0).images[0]
```
"""
