"""Images as square float arrays: padded to a square (never squashed), then resized."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def pad_to_square(image: Image.Image, fill: int = 0) -> Image.Image:
    """Centre ``image`` on a square canvas (black borders), keeping its aspect ratio."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def gray_array(image: Image.Image, size: int) -> np.ndarray:
    """Grayscale in [0, 1], ``size`` x ``size``, padded to square first."""
    square = pad_to_square(image.convert("L"))
    if square.size != (size, size):
        square = square.resize((size, size), Image.BILINEAR)
    return np.asarray(square, dtype=np.float32) / 255.0


def gray_stack(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """(N, size, size) float32 grayscale."""
    return np.stack([gray_array(image, size) for image in images])
