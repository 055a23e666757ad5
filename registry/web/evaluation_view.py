"""The evaluation summary on the model page and the review page: a table and two SVG plots.

Everything comes from the card's ``evaluation`` front matter (written by ``registry-train
evaluate``), which is publisher input: numbers are coerced with ``float`` and anything else
is dropped, and the SVG contains only numbers and fixed labels, so nothing from the card
reaches the markup unescaped. No JavaScript.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

ARMS = ("real", "real+synthetic", "synthetic")
ARM_COLOURS = {"real": "#6b7280", "real+synthetic": "#2563eb", "synthetic": "#93c5fd"}
WIDTH, HEIGHT = 360, 180


@dataclass
class EvaluationView:
    """Rows of (what, value, detail) and the plots, for ``browse/_evaluation.html``."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    auroc_svg: Markup | None = None
    histogram_svg: Markup | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _interval(summary: Any) -> tuple[float | None, float | None, float | None]:
    if not isinstance(summary, dict):
        return None, None, None
    ci = summary.get("ci95")
    low, high = (
        (_number(ci[0]), _number(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    )
    return _number(summary.get("value")), low, high


def _shown(value: float | None, low: float | None, high: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if low is not None and high is not None:
        text += f" [{low:+.3f}, {high:+.3f}]" if signed else f" [{low:.3f}, {high:.3f}]"
    return text


def _utility_rows(utility: dict[str, Any], view: EvaluationView) -> None:
    sizes = utility.get("sample_sizes") if isinstance(utility.get("sample_sizes"), dict) else {}
    detail = ", ".join(
        f"{key.replace('_', ' ')} {int(n)}" for key, n in sizes.items() if _number(n) is not None
    )
    arms = utility.get("arms") if isinstance(utility.get("arms"), dict) else {}
    for arm in ARMS:
        if arm in arms:
            view.rows.append((f"Utility: AUROC, {arm}", _shown(*_interval(arms[arm])), detail))
    gains = utility.get("gain") if isinstance(utility.get("gain"), dict) else {}
    gain = gains.get("real+synthetic - real")
    if gain is not None:
        view.rows.append(
            (
                "Utility: gain from synthetic",
                _shown(*_interval(gain), signed=True),
                "real+synthetic minus real, paired bootstrap 95% CI",
            )
        )
    view.auroc_svg = _auroc_svg({arm: _interval(arms.get(arm)) for arm in ARMS if arm in arms})


def _privacy_rows(privacy: dict[str, Any], view: EvaluationView) -> None:
    spaces = privacy.get("spaces") if isinstance(privacy.get("spaces"), dict) else {}
    for name in ("pixel", "features"):
        space = spaces.get(name)
        if not isinstance(space, dict):
            continue
        generated = space.get("generated") if isinstance(space.get("generated"), dict) else {}
        baseline = space.get("baseline") if isinstance(space.get("baseline"), dict) else {}
        values = [
            _number(d.get(k))
            for d, k in ((generated, "median"), (baseline, "median"), (generated, "min"))
        ]
        if None in values:
            continue
        view.rows.append((
            f"Privacy: nearest training image ({name})",
            f"median {values[0]:.4f} vs held-out {values[1]:.4f}",
            f"closest {values[2]:.4f}; threshold {_number(space.get('threshold')) or 0:.4f}",
        ))  # fmt: skip
    copies = privacy.get("near_copies") if isinstance(privacy.get("near_copies"), dict) else {}
    count = _number(copies.get("count"))
    sizes = privacy.get("sample_sizes") if isinstance(privacy.get("sample_sizes"), dict) else {}
    generated_n = _number(sizes.get("generated"))
    if count is not None:
        verdict = "passed" if count == 0 else "flagged"
        of = f" of {int(generated_n)} generated" if generated_n is not None else ""
        view.rows.append(("Privacy: near-copies", f"{int(count)}{of} ({verdict})", ""))
    pixel = spaces.get("pixel") if isinstance(spaces.get("pixel"), dict) else {}
    view.histogram_svg = _histogram_svg(pixel.get("histogram"))


def _diversity_rows(diversity: dict[str, Any], view: EvaluationView) -> None:
    generated, real = (
        _number(diversity.get("generated_ms_ssim")),
        _number(diversity.get("real_ms_ssim")),
    )
    if generated is not None and real is not None:
        view.rows.append(
            (
                "Diversity: pairwise MS-SSIM",
                f"{generated:.3f} vs real {real:.3f}",
                "lower is more diverse",
            )
        )


def _fidelity_rows(fidelity: dict[str, Any], view: EvaluationView) -> None:
    fid, kid = _number(fidelity.get("fid")), _number(fidelity.get("kid"))
    if fid is not None:
        size = _number(fidelity.get("feature_size"))
        at = f"at {int(size)} px" if size is not None else ""
        view.rows.append(
            (
                "Fidelity: FID / KID",
                f"{fid:.2f} / {kid if kid is not None else float('nan'):.4f}",
                at,
            )
        )


def evaluation_view(card_data: dict[str, Any] | None) -> EvaluationView | None:
    """The summary of a card's evaluation, or None when it has no machine-readable one."""
    evaluation = (card_data or {}).get("evaluation")
    if not isinstance(evaluation, dict):
        return None
    view = EvaluationView()
    laterality = evaluation.get("laterality")
    if isinstance(laterality, dict) and _number(laterality.get("accuracy")) is not None:
        ci = laterality.get("ci95")
        low, high = (
            (_number(ci[0]), _number(ci[1]))
            if isinstance(ci, list) and len(ci) == 2
            else (None, None)
        )
        view.rows.append(
            (
                "Phantom reader: laterality",
                _shown(_number(laterality.get("accuracy")), low, high),
                "phantom prompts, analytic reader",
            )
        )
    for section, render in (
        ("utility", _utility_rows),
        ("privacy", _privacy_rows),
        ("diversity", _diversity_rows),
        ("fidelity", _fidelity_rows),
    ):
        if isinstance(evaluation.get(section), dict):
            render(evaluation[section], view)
    return view if view.rows else None


def _el(tag: str, text: str | None = None, **attrs: object) -> str:
    """One SVG element; attribute values are numbers or fixed strings, text is escaped."""
    shown = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{f"{v:.1f}" if isinstance(v, float) else v}"'
        for k, v in attrs.items()
    )
    return f"<{tag} {shown}/>" if text is None else f"<{tag} {shown}>{escape(text)}</{tag}>"


def _svg(label: str, parts: list[str]) -> Markup:
    head = _el("svg", None, xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {HEIGHT}",
               width=WIDTH, height=HEIGHT, role="img", aria_label=label)[:-2]  # fmt: skip
    return Markup(head + ">" + "".join(parts) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "middle", fill: str = "#374151") -> str:
    return _el("text", text, x=float(x), y=float(y), font_size=10, text_anchor=anchor, fill=fill)


def _auroc_svg(arms: dict[str, tuple[float | None, float | None, float | None]]) -> Markup | None:
    shown = {arm: v for arm, v in arms.items() if v[0] is not None}
    if not shown:
        return None
    left, top, bottom = 110, 10, 30
    plot = WIDTH - left - 20
    row = (HEIGHT - top - bottom) / len(shown)

    def x(value: float) -> float:
        return left + plot * min(max(value, 0.0), 1.0)

    parts = []
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            _el("line", x1=x(tick), y1=top, x2=x(tick), y2=HEIGHT - bottom, stroke="#d1d5db")
        )
        parts.append(_text(x(tick), HEIGHT - 16, f"{tick:.1f}"))
    for i, (arm, (value, low, high)) in enumerate(shown.items()):
        y = top + i * row + row * 0.2
        assert value is not None
        parts.append(_text(left - 6, y + row * 0.4, arm, anchor="end", fill="#111827"))
        parts.append(_el("rect", x=left, y=y, width=x(value) - left, height=row * 0.6,
                         fill=ARM_COLOURS[arm]))  # fmt: skip
        if low is not None and high is not None:
            mid = y + row * 0.3
            parts.append(_el("line", x1=x(low), y1=mid, x2=x(high), y2=mid, stroke="#111827",
                             stroke_width=2))  # fmt: skip
            for end in (low, high):
                parts.append(_el("line", x1=x(end), y1=mid - 5, x2=x(end), y2=mid + 5,
                                 stroke="#111827", stroke_width=2))  # fmt: skip
    parts.append(_text(left + plot / 2, HEIGHT - 3, "macro AUROC, 95% CI"))
    return _svg("Macro AUROC per arm with 95% intervals", parts)


def _histogram_svg(histogram: Any) -> Markup | None:
    if not isinstance(histogram, dict):
        return None
    edges = [_number(e) for e in histogram.get("edges") or []]
    series = {n: [_number(c) for c in histogram.get(n) or []] for n in ("baseline", "generated")}
    bins = len(edges) - 1
    if bins < 1 or None in edges or any(len(c) != bins or None in c for c in series.values()):
        return None
    left, top, bottom = 30, 10, 30
    plot_w, plot_h = WIDTH - left - 10, HEIGHT - top - bottom
    fractions = {}
    for name, counts in series.items():
        values = [float(c or 0) for c in counts]
        total = sum(values) or 1.0
        fractions[name] = [c / total for c in values]
    peak = max(max(f) for f in fractions.values()) or 1.0
    width = plot_w / bins
    colours = {"generated": "#2563eb", "baseline": "#f59e0b"}
    parts = []
    for offset, name in enumerate(("baseline", "generated")):
        for i, fraction in enumerate(fractions[name]):
            h = plot_h * fraction / peak
            parts.append(_el("rect", x=left + i * width + offset * width / 2, y=top + plot_h - h,
                             width=width / 2, height=h, fill=colours[name]))  # fmt: skip
    parts.append(_el("line", x1=left, y1=top + plot_h, x2=left + plot_w, y2=top + plot_h,
                     stroke="#374151"))  # fmt: skip
    for i in (0, bins):
        parts.append(_text(left + i * width, top + plot_h + 13, f"{edges[i]:.3f}"))
    parts.append(_text(left + 4, top + 10, "held-out real", anchor="start", fill="#b45309"))
    parts.append(_text(left + 84, top + 10, "generated", anchor="start", fill="#2563eb"))
    parts.append(
        _text(left + plot_w / 2, HEIGHT - 3, "pixel distance to the nearest training image")
    )
    return _svg("Nearest-training-image distances: generated vs held-out real", parts)
