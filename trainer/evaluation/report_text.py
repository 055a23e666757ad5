"""Plain-text lines for the evaluation sections (what ``registry-train evaluate`` prints)."""

from __future__ import annotations

from typing import Any


def _ci(summary: dict[str, Any]) -> str:
    value, ci = summary.get("value"), summary.get("ci95")
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def utility_lines(utility: dict[str, Any]) -> list[str]:
    """Macro AUROC per arm with its 95% interval, and the gains."""
    sizes = utility["sample_sizes"]
    lines = [
        f"utility (macro AUROC, 95% CI; {sizes['real_train_images']} real, "
        f"{sizes['synthetic_images']} synthetic, tested on {sizes['test_images']} images "
        f"of {sizes['test_patients']} held-out patients)"
    ]
    for arm, summary in utility["arms"].items():
        lines.append(f"  {arm:<26}{_ci(summary)}")
    for name, summary in utility["gain"].items():
        value, ci = summary["value"], summary["ci95"]
        shown = "n/a" if value is None else f"{value:+.3f}"
        if ci is not None and value is not None:
            shown += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        lines.append(f"  gain {name:<21}{shown}")
    return lines


def privacy_lines(privacy: dict[str, Any]) -> list[str]:
    """Nearest-neighbour distances against the baseline, and the near-copies."""
    sizes = privacy["sample_sizes"]
    lines = [
        f"privacy (nearest training image; {sizes['generated']} generated vs "
        f"{sizes['held_out']} held-out real, {sizes['training']} training images)"
    ]
    for name, space in privacy["spaces"].items():
        generated, baseline = space["generated"], space["baseline"]
        lines.append(
            f"  {name:<9} generated median {generated['median']:.4f} min {generated['min']:.4f}"
            f" | held-out median {baseline['median']:.4f} min {baseline['min']:.4f}"
            f" | near-copies {space['near_copies']} under {space['threshold']:.4f}"
        )
    verdict = "passed" if privacy["passed"] else "FLAGGED"
    lines.append(f"  near-copies: {privacy['near_copies']['count']} ({verdict})")
    return lines


def diversity_lines(diversity: dict[str, Any]) -> list[str]:
    """Generated vs real pairwise MS-SSIM."""
    return [
        f"diversity (mean pairwise MS-SSIM, lower is more diverse; finding {diversity['finding']})",
        f"  generated {diversity['generated_ms_ssim']:.4f} | real {diversity['real_ms_ssim']:.4f}",
    ]


def format_sections(sections: dict[str, Any]) -> str:
    """Every section present, one block each."""
    lines: list[str] = []
    for name, render in (
        ("utility", utility_lines),
        ("privacy", privacy_lines),
        ("diversity", diversity_lines),
    ):
        if name in sections:
            lines += render(sections[name])
    return "\n".join(lines)
