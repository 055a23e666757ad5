"""Utility and privacy evaluations at benchmark sizes, each beside its same-run baseline.

Utility: for each size of the limited real set, the classifier's macro AUROC trained on the
real images alone (the baseline) beside real + N synthetic and synthetic only, with
patient-bootstrap 95% intervals and the paired gain. Synthetic images come from the phantom
painter (a generator that draws what each report says: the ceiling) and, with ``--model``,
from a trained model (a fit run or an export). Privacy: the nearest-training-image distances
of a normal model and of a deliberate memoriser, beside the held-out real baseline, on a
smaller phantom set (``--privacy-phantoms``: the more training phantoms, the closer real
held-out ones come to one of them, and the tighter the default near-copy threshold).

    python -m benchmarks.evaluation                         # CPU: ~2-4 minutes
    python -m benchmarks.evaluation --model runs/a --phantoms 2000 --synthetic 1000
    python -m benchmarks.evaluation --svg docs/evaluation.svg   # the README's plot
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phantoms", type=int, default=400, help="real phantoms (32 px)")
    parser.add_argument("--real-counts", default="8,16,32", help="sizes of the limited real set")
    parser.add_argument("--synthetic", type=int, default=400, help="synthetic images per arm")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--privacy-count", type=int, default=64)
    parser.add_argument("--privacy-phantoms", type=int, default=100, help="its training set")
    parser.add_argument("--memoriser-steps", type=int, default=1500)
    parser.add_argument("--model", type=Path, help="a trained run or export to measure too")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps for --model")
    parser.add_argument("--skip-privacy", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write results.json here")
    parser.add_argument("--svg", type=Path, help="write the model-page plots here (README)")
    return parser.parse_args(argv)


def _row(label: str, report: dict[str, Any]) -> str:
    arms, gain = report["arms"], report["gain"]["real+synthetic - real"]

    def shown(summary: dict[str, Any]) -> str:
        low, high = summary["ci95"]
        return f"{summary['value']:.3f} [{low:.3f},{high:.3f}]"

    return (
        f"{label:<34}{shown(arms['real']):>22}{shown(arms['real+synthetic']):>22}"
        f"{shown(arms['synthetic']):>22}   {gain['value']:+.3f} "
        f"[{gain['ci95'][0]:+.3f},{gain['ci95'][1]:+.3f}]"
    )


def utility(args: argparse.Namespace, manifest: Path) -> dict[str, Any]:
    from trainer.evaluation.calibration import phantom_painter
    from trainer.evaluation.utility import run_utility_study, split_by_patient
    from trainer.manifest import read_manifest

    records = read_manifest(manifest).records
    sources: dict[str, Any] = {"phantom painter": phantom_painter(manifest)}
    if args.model is not None:
        from trainer.evaluation.sampler import open_sampler

        sources[f"model {args.model.name}"] = open_sampler(args.model, steps=args.steps)
    print(f"\nutility: macro AUROC on held-out real patients (95% CI), {args.synthetic} synthetic")
    print(f"{'synthetic from / real images':<34}{'real only (baseline)':>22}"
          f"{'real+synthetic':>22}{'synthetic only':>22}   gain (b - a)")  # fmt: skip
    results: dict[str, Any] = {}
    for count in [int(c) for c in args.real_counts.split(",")]:
        split = split_by_patient(records, real_count=count, test_fraction=0.3, seed=0)
        for name, synthesize in sources.items():
            started = time.monotonic()
            report = run_utility_study(
                split, synthesize, synthetic_count=args.synthetic, seed=0,
                resamples=args.resamples,
            )  # fmt: skip
            report["seconds"] = round(time.monotonic() - started, 1)
            results[f"{name} / {count} real"] = report
            print(_row(f"{name} / {count} real", report), flush=True)
    return results


def privacy(args: argparse.Namespace, manifest: Path, work: Path) -> dict[str, Any]:
    from trainer.evaluation.calibration import memorising_copy
    from trainer.evaluation.report_text import privacy_lines
    from trainer.evaluation.sampler import open_sampler
    from trainer.evaluation.studies import StudyOptions, run_studies
    from trainer.manifest import read_manifest
    from trainer.tiny import build_tiny_pipeline

    base = build_tiny_pipeline(work / "base", seed=0)
    first = read_manifest(manifest).select("train")[0].image
    models = {"normal (tiny base)": base}
    models["memoriser"] = memorising_copy(
        base, first, work / "memoriser", steps=args.memoriser_steps
    )
    if args.model is not None:
        models[f"model {args.model.name}"] = args.model
    results = {}
    for name, model in models.items():
        sampler = open_sampler(model, steps=args.steps, resolution=32, device="cpu")
        report = run_studies(
            sampler, manifest, resolution=32, utility=False, privacy=True, diversity=False,
            options=StudyOptions(privacy_count=args.privacy_count), out_dir=work / name,
        )["privacy"]  # fmt: skip
        results[name] = report
        print(f"\n{name}:")
        print("\n".join(privacy_lines(report)), flush=True)
    return results


def write_svg(path: Path, results: dict[str, Any]) -> None:
    from registry.web.evaluation_view import evaluation_view

    utility = next(v for k, v in results["utility"].items() if k.startswith("phantom painter"))
    privacy = results.get("privacy", {}).get("memoriser")
    evaluation = {"utility": utility, **({"privacy": privacy} if privacy else {})}
    view = evaluation_view({"evaluation": evaluation})
    assert view is not None and view.auroc_svg is not None
    plots = [str(view.auroc_svg)] + ([str(view.histogram_svg)] if view.histogram_svg else [])
    inner = "".join(
        f'<g transform="translate({i * 370},0)">{svg}</g>' for i, svg in enumerate(plots)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{370 * len(plots)}" height="180" '
        f'viewBox="0 0 {370 * len(plots)} 180">{inner}</svg>\n',
        "utf-8",
    )
    print(f"\nwrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from trainer.phantoms import generate_phantoms

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest = generate_phantoms(work / "phantoms", args.phantoms, size=32, seed=5)
        results = {"utility": utility(args, manifest)}
        if not args.skip_privacy:
            small = generate_phantoms(work / "small", args.privacy_phantoms, size=32, seed=3)
            results["privacy"] = privacy(args, small, work)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2), "utf-8")
    if args.svg is not None:
        write_svg(args.svg, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
