"""An analytic reader for phantom images: which findings show, and on which side.

It measures mean brightness in fixed regions of the nominal phantom anatomy (see
trainer/phantoms.py), so it works on rendered phantoms and on images a model generates.
The sides it reports are the patient's (radiological convention: patient's left is on the
image's right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from trainer.phantoms import HEART_CENTER, Finding, image_x_sign

EFFUSION_THRESHOLD = 0.13
PNEUMOTHORAX_THRESHOLD = 0.1
CARDIOMEGALY_THRESHOLD = 0.15


@dataclass(frozen=True)
class PhantomReading:
    """Brightness contrasts per region and the findings they imply."""

    effusion: dict[str, float]  # lateral lung base minus upper lung, per patient side
    pneumothorax: dict[str, float]  # medial upper lung minus lateral rim, per patient side
    cardiomegaly: float  # just beyond the normal cardiac border minus lateral lung

    @property
    def effusion_side(self) -> str | None:
        """'left', 'right', 'bilateral' or None."""
        return _side_of({s for s, v in self.effusion.items() if v > EFFUSION_THRESHOLD})

    @property
    def pneumothorax_side(self) -> str | None:
        """'left', 'right', 'bilateral' or None."""
        return _side_of({s for s, v in self.pneumothorax.items() if v > PNEUMOTHORAX_THRESHOLD})

    @property
    def has_cardiomegaly(self) -> bool:
        """Whether the cardiac silhouette reaches beyond its normal border."""
        return self.cardiomegaly > CARDIOMEGALY_THRESHOLD

    def shows(self, finding: Finding) -> bool:
        """Whether the image shows ``finding`` on its side (and, if normal, nothing else)."""
        if finding.kind == "effusion":
            return self.effusion_side == finding.side
        if finding.kind == "pneumothorax":
            return self.pneumothorax_side == finding.side
        if finding.kind == "cardiomegaly":
            return self.has_cardiomegaly
        return not (self.effusion_side or self.pneumothorax_side or self.has_cardiomegaly)


def _side_of(sides: set[str]) -> str | None:
    if len(sides) == 2:
        return "bilateral"
    return next(iter(sides), None)


READ_SIZE = 128  # regions a pixel or two wide at 32 px are measured on an upsampled copy


def _to_gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return the image as float grayscale in [0, 1], resampled to READ_SIZE square."""
    if not isinstance(image, Image.Image):
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8:
            pixels = np.clip(pixels * 255.0, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
    gray = image.convert("L").resize((READ_SIZE, READ_SIZE), Image.BILINEAR)
    return np.asarray(gray, dtype=np.float32) / 255.0


def read_phantom(image: Image.Image | np.ndarray) -> PhantomReading:
    """Measure a phantom-like frontal image (uint8 or [0, 1] float; square, 32 px or more)."""
    pixels = _to_gray(image)
    height, width = pixels.shape
    x, y = np.meshgrid((np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height)

    def mean(side: str, dx: tuple[float, float], ys: tuple[float, float]) -> float:
        offset = image_x_sign(side) * (x - 0.5)
        mask = (offset >= dx[0]) & (offset < dx[1]) & (y >= ys[0]) & (y < ys[1])
        return float(pixels[mask].mean())

    effusion, pneumothorax, beyond_border = {}, {}, []
    for side in ("right", "left"):
        upper = mean(side, (0.1, 0.22), (0.28, 0.42))
        effusion[side] = mean(side, (0.22, 0.32), (0.56, 0.65)) - upper
        # The hilar lung stays aerated however far a pneumothorax collapses the lung.
        hilar = mean(side, (0.08, 0.16), (0.36, 0.46))
        pneumothorax[side] = hilar - mean(side, (0.255, 0.315), (0.3, 0.55))
        border = 0.15 + image_x_sign(side) * (HEART_CENTER[0] - 0.5)
        heart_edge = mean(side, (border, border + 0.03), (0.56, 0.64))
        lateral = mean(side, (0.28, 0.32), (0.45, 0.55))
        beyond_border.append(heart_edge - lateral)
    return PhantomReading(effusion, pneumothorax, cardiomegaly=min(beyond_border))
