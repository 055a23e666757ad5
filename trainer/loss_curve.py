"""The run's loss log (``metrics.jsonl``) and its curve as a PNG (drawn with Pillow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

METRICS_FILE = "metrics.jsonl"


def append_metrics(output_dir: Path, row: dict[str, Any]) -> None:
    """Append one step's metrics."""
    with (Path(output_dir) / METRICS_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    """All logged rows, in order."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def truncate_metrics(output_dir: Path, last_step: int) -> None:
    """Forget rows after ``last_step`` (those steps are about to be trained again)."""
    rows = [row for row in read_metrics(output_dir) if row["step"] <= last_step]
    path = Path(output_dir) / METRICS_FILE
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over ``window`` values."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def draw_loss_curve(
    steps: list[int],
    losses: list[float],
    path: Path,
    *,
    validation: list[list[float]] | None = None,
) -> Path:
    """Plot per-step loss (grey), its moving average (blue), held-out loss (orange) to a PNG."""
    validation = validation or []
    width, height, margin = 640, 360, 48
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin, 12, width - 12, height - margin], outline="black")
    if steps:
        everything = losses + [value for _, value in validation]
        low, high = min(everything), max(everything)
        span = max(high - low, 1e-12)
        first, last = steps[0], max(steps[-1], steps[0] + 1)

        def point(step: int, loss: float) -> tuple[float, float]:
            x = margin + (step - first) / (last - first) * (width - 12 - margin)
            y = height - margin - (loss - low) / span * (height - margin - 12)
            return x, y

        smooth = moving_average(losses, max(1, len(losses) // 20))
        if len(steps) > 1:
            draw.line([point(s, v) for s, v in zip(steps, losses, strict=True)], fill="#bbbbbb")
            draw.line([point(s, v) for s, v in zip(steps, smooth, strict=True)], "#1f5fbf", 2)
        held_out = [point(int(s), v) for s, v in validation]
        if len(held_out) > 1:
            draw.line(held_out, fill="#e07b00", width=2)
        for x, y in held_out:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill="#e07b00")
        draw.text((4, 12), f"{high:.4g}", fill="black")
        draw.text((4, height - margin - 10), f"{low:.4g}", fill="black")
        draw.text((margin, height - margin + 6), f"step {first}", fill="black")
        draw.text((width - 90, height - margin + 6), f"step {last}", fill="black")
    label = "training loss" + (" / held-out loss (orange)" if validation else "")
    draw.text((width // 2 - 3 * len(label), height - 20), label, fill="black")  # ~6 px/char
    image.save(path)
    return Path(path)
