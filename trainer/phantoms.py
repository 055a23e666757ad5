"""Synthetic chest X-ray phantoms with findings of known kind, side and size, and their reports.

Images follow radiological convention: the patient's right is on the image's left, so a
left-sided finding appears in the right half of the image. Coordinates below are fractions
of the image width (x, left to right) and height (y, top to bottom).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.manifest import write_manifest

FINDINGS = ("normal", "effusion", "cardiomegaly", "pneumothorax")
SIDES = ("left", "right", "bilateral")
SIZES = ("small", "moderate", "large")

# Nominal anatomy, shared with the analytic reader in trainer/phantom_reading.py.
LUNG_CENTER_DX = 0.19  # lung centre's distance from the midline
LUNG_CENTER_Y = 0.47
LUNG_HALF_WIDTH = 0.15
LUNG_HALF_HEIGHT = 0.29
LUNG_BOTTOM = LUNG_CENTER_Y + LUNG_HALF_HEIGHT
HEART_CENTER = (0.54, 0.6)  # slightly towards the patient's left (image right)
HEART_HALF_HEIGHT = 0.13
HEART_HALF_WIDTH = {"normal": 0.14, "small": 0.185, "moderate": 0.205, "large": 0.225}
EFFUSION_FRACTION = {"small": 0.2, "moderate": 0.35, "large": 0.55}
PNEUMOTHORAX_COLLAPSE = {"small": 0.34, "moderate": 0.42, "large": 0.55}
SUPERSAMPLE = 2
PHANTOM_DATASET = "synthetic-phantoms"


@dataclass(frozen=True)
class Finding:
    """One phantom's finding: kind, the patient's side (or None) and size (or None)."""

    kind: str
    side: str | None = None
    size: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FINDINGS:
            raise ValueError(f"unknown finding {self.kind!r}; choose one of {FINDINGS}")
        if self.kind in ("effusion", "pneumothorax") and self.side not in SIDES:
            raise ValueError(f"{self.kind} needs a side, one of {SIDES}")
        if self.kind == "pneumothorax" and self.side == "bilateral":
            raise ValueError("bilateral pneumothorax is not drawn")
        if self.kind != "normal" and self.size not in SIZES:
            raise ValueError(f"{self.kind} needs a size, one of {SIZES}")

    @property
    def sides(self) -> tuple[str, ...]:
        """The patient's sides involved."""
        if self.side == "bilateral":
            return ("right", "left")
        return (self.side,) if self.side else ()

    def labels(self) -> dict[str, str | None]:
        """Structured labels as stored in the manifest."""
        return asdict(self)


def sample_finding(rng: np.random.Generator) -> Finding:
    """Draw a finding: normal 20%, effusion 40%, cardiomegaly 15%, pneumothorax 25%."""
    kind = str(rng.choice(FINDINGS, p=[0.2, 0.4, 0.15, 0.25]))
    if kind == "normal":
        return Finding("normal")
    size = str(rng.choice(SIZES))
    if kind == "effusion":
        return Finding(kind, str(rng.choice(SIDES, p=[0.4, 0.4, 0.2])), size)
    if kind == "pneumothorax":
        return Finding(kind, str(rng.choice(SIDES[:2])), size)
    return Finding(kind, None, size)


def image_x_sign(side: str) -> float:
    """+1 for the patient's left (image right), -1 for the patient's right (image left)."""
    return 1.0 if side == "left" else -1.0


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Value noise: a coarse random grid bilinearly upsampled to n x n."""
    coarse = Image.fromarray(rng.random((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((n, n), Image.BILINEAR), dtype=np.float32)


def render_phantom(finding: Finding, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one frontal phantom as a ``size`` x ``size`` uint8 grayscale array."""
    n = size * SUPERSAMPLE
    jitter = rng.normal(0.0, 1.0, 8)
    x, y = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n)
    x = 0.5 + (x - 0.5 - 0.008 * jitter[0]) * (1 + 0.02 * jitter[1])
    y = 0.5 + (y - 0.5 - 0.008 * jitter[2]) * (1 + 0.02 * jitter[1])

    image = np.full((n, n), 0.04, dtype=np.float32)
    body = _ellipse(x, y, 0.5, 0.6, 0.44, 0.58) < 1
    image[body] = 0.5
    image[(np.abs(x - 0.5) < 0.075) & (y < 0.72) & body] = 0.68  # mediastinum
    spine = np.abs(x - 0.5) < 0.035
    image[spine & body] = 0.76 + 0.04 * (np.sin(y[spine & body] * 2 * np.pi * 9) > 0.6)

    texture = _smooth_noise(rng, n, 12)
    for side in ("right", "left"):
        sign = image_x_sign(side)
        cx = 0.5 + sign * LUNG_CENTER_DX
        ellipse = _ellipse(x, y, cx, LUNG_CENTER_Y, LUNG_HALF_WIDTH, LUNG_HALF_HEIGHT)
        dome_top = 0.655 - (0.02 if side == "right" else 0.0) + 0.006 * jitter[3]
        dome = dome_top + 0.12 * np.clip(((x - cx) / 0.16) ** 2, 0, 1)
        lung = (ellipse < 1) & (y < dome)
        hilum = np.hypot(x - (0.5 + sign * 0.09), y - 0.48)
        markings = 0.07 * np.exp(-hilum / 0.09) + 0.05 * (texture - 0.5)
        shade = np.float32(0.17 + 0.02 * jitter[4])
        if finding.kind == "pneumothorax" and side in finding.sides:
            collapse = PNEUMOTHORAX_COLLAPSE[finding.size] + 0.02 * jitter[5]
            inner = _ellipse(
                x,
                y,
                cx - sign * LUNG_HALF_WIDTH * collapse * 0.9,
                LUNG_CENTER_Y + LUNG_HALF_HEIGHT * collapse * 0.35,
                LUNG_HALF_WIDTH * (1 - collapse),
                LUNG_HALF_HEIGHT * (1 - collapse * 0.45),
            )
            image[lung] = np.where(inner[lung] < 1, shade + 0.08 + markings[lung], 0.05)
            image[lung & (np.abs(np.sqrt(inner) - 1) < 0.05)] = 0.45  # visceral pleural line
        else:
            image[lung] = shade + markings[lung]
        if finding.kind == "effusion" and side in finding.sides:
            lateral = np.clip(sign * (x - 0.5) / (LUNG_CENTER_DX + LUNG_HALF_WIDTH), 0, 1)
            height = 2 * LUNG_HALF_HEIGHT * EFFUSION_FRACTION[finding.size]
            level = LUNG_BOTTOM - height * (1 + 0.05 * jitter[6]) - 0.09 * lateral**2  # meniscus
            fluid = (ellipse < 1.12) & (y > level) & body
            image[fluid] = 0.62 + 0.08 * np.clip((y[fluid] - level[fluid]) / 0.1, 0, 1)

    heart_width = HEART_HALF_WIDTH[finding.size if finding.kind == "cardiomegaly" else "normal"]
    heart = _ellipse(x, y, *HEART_CENTER, heart_width * (1 + 0.03 * jitter[7]), HEART_HALF_HEIGHT)
    image[heart < 1] = np.maximum(image[heart < 1], 0.7)

    for rib in range(9):  # posterior ribs curve down towards the chest wall
        curve = 0.17 + 0.068 * rib + 0.1 * (np.abs(x - 0.5) / 0.4) ** 1.6
        rib_mask = (np.abs(y - curve) < 0.011) & (np.abs(x - 0.5) > 0.04) & body
        image[rib_mask & (y < 0.8)] += 0.1
    for sign in (-1.0, 1.0):  # clavicles
        t = np.clip((np.abs(x - 0.5) - 0.05) / 0.27, 0, 1)
        clavicle = (np.abs(y - (0.16 - 0.05 * t)) < 0.013) & (np.abs(x - 0.5) > 0.05)
        image[clavicle & (np.sign(x - 0.5) == sign) & (np.abs(x - 0.5) < 0.32)] += 0.15

    image = image * (1 + 0.04 * rng.normal()) + rng.normal(0, 0.015, image.shape)
    small = Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8), mode="L")
    return np.asarray(small.resize((size, size), Image.BOX))


_SIZE_WORDS = {"small": ("small", "trace"), "moderate": ("moderate",), "large": ("large",)}


def write_report(finding: Finding, rng: np.random.Generator) -> str:
    """Write a short impression in radiology language for ``finding``."""

    def pick(*options: str) -> str:
        return str(rng.choice(options))

    size = pick(*_SIZE_WORDS[finding.size]) if finding.size else ""
    if finding.kind == "normal":
        return pick(
            "No acute cardiopulmonary process.",
            "The lungs are clear. Heart size is normal. No pleural effusion or pneumothorax.",
            "Normal chest radiograph.",
        )
    if finding.kind == "effusion":
        if finding.side == "bilateral":
            return pick(
                f"{size.capitalize()} bilateral pleural effusions.",
                f"{size.capitalize()} bilateral pleural effusions with meniscus. No pneumothorax.",
            )
        return pick(
            f"{size.capitalize()} {finding.side} pleural effusion.",
            f"{size.capitalize()} {finding.side} pleural effusion with meniscus sign.",
            f"{size.capitalize()} {finding.side} pleural effusion. Heart size is normal.",
            f"Blunting of the {finding.side} costophrenic angle, {size} {finding.side} effusion.",
        )
    if finding.kind == "cardiomegaly":
        degree = {"small": "Mild", "moderate": "Moderate", "large": "Severe"}[finding.size]
        return pick(
            f"{degree} cardiomegaly. No pleural effusion.",
            f"{degree} enlargement of the cardiac silhouette. Lungs are clear.",
        )
    return pick(
        f"{size.capitalize()} {finding.side} pneumothorax.",
        f"{size.capitalize()} {finding.side} apical pneumothorax with visible pleural line.",
        f"{size.capitalize()} {finding.side} pneumothorax. No pleural effusion.",
    )


def generate_phantoms(
    out_dir: Path,
    n: int,
    size: int = 64,
    seed: int = 0,
    validation_fraction: float = 0.1,
) -> Path:
    """Write ``n`` phantom PNGs, reports and labels with a ``manifest.jsonl``; return its path."""
    if n < 1 or size < 16:
        raise ValueError("need n >= 1 phantoms of size >= 16 px")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        finding = sample_finding(rng)
        pixels = render_phantom(finding, size, rng)
        name = f"images/phantom-{seed}-{index:06d}.png"
        Image.fromarray(pixels, mode="L").save(out_dir / name)
        rows.append(
            {
                "image": name,
                "text": write_report(finding, rng),
                "labels": finding.labels(),
                "patient_id": f"phantom-{seed}-{index:06d}",
                "split": "validation" if rng.random() < validation_fraction else "train",
            }
        )
    description = (
        f"{n} synthetic chest X-ray phantoms ({size} px, seed {seed}) made by registry-train: "
        "effusion, cardiomegaly, pneumothorax or normal, with short reports; no patient data."
    )
    return write_manifest(
        out_dir / "manifest.jsonl", rows, dataset=PHANTOM_DATASET, description=description
    )
