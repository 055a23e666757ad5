"""``registry-train``: phantoms, base models, import, fine-tuning, export and evaluation."""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import click

from client.generate import DEFAULT_GUIDANCE  # one default for evaluate and generate
from trainer.config import ARCHITECTURES, DEVICES, DTYPES, MIXED_PRECISIONS, MODES, TRACKERS
from trainer.errors import TrainerError

CHOICES = {
    "mode": MODES,
    "mixed_precision": MIXED_PRECISIONS,
    "validation_device": DEVICES,
    "validation_dtype": DTYPES,
    "report_to": TRACKERS,
}


class _TrainerGroup(click.Group):
    """Shows bad input (TrainerError) as a one-line error and exit status 1, no traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TrainerError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_TrainerGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log progress (every rank, on clusters).")
def main(verbose: bool) -> None:
    """Fine-tune chest X-ray diffusion models and export them for the registry."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _inference_options(command: Callable[..., None]) -> Callable[..., None]:
    """--device and --dtype for the commands that generate images."""
    command = click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="auto",
        show_default=True,
        help="auto: bf16 (fp16) autocast on CUDA, fp32 on CPU.",
    )(command)
    return click.option(
        "--device",
        type=click.Choice(DEVICES),
        default="auto",
        show_default=True,
        help="auto: CUDA, then MPS, then CPU.",
    )(command)


@main.command("init-base")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="tiny", show_default=True)
@click.option(
    "--vae-steps",
    type=click.IntRange(min=0),
    help="Steps of VAE pre-training on phantoms (default 300 for tiny, 0 for sd15).",
)
@click.option(
    "--text-steps",
    type=click.IntRange(min=0),
    help="Steps of text-encoder pre-training on phantom reports (default 150 tiny, 0 sd15).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def init_base(
    out_dir: Path, arch: str, vae_steps: int | None, text_steps: int | None, seed: int
) -> None:
    """Build a base Stable Diffusion pipeline offline (random weights, own tokenizer)."""
    from trainer.tiny import build_base_pipeline

    if vae_steps is None:
        vae_steps = 300 if arch == "tiny" else 0
    if text_steps is None:
        text_steps = 150 if arch == "tiny" else 0
    path = build_base_pipeline(
        out_dir,
        arch=arch,
        seed=seed,
        vae_pretrain_steps=vae_steps,
        text_pretrain_steps=text_steps,
    )
    click.echo(f"wrote {arch} base pipeline to {path}")


@main.command("phantoms")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("-n", "count", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def phantoms(out_dir: Path, count: int, size: int, seed: int) -> None:
    """Write synthetic chest X-ray phantoms with reports, labels and a manifest.jsonl."""
    from trainer.phantoms import generate_phantoms

    manifest = generate_phantoms(out_dir, count, size=size, seed=seed)
    click.echo(f"wrote {count} phantoms and {manifest}")


def _fit_options(command: Callable[..., None]) -> Callable[..., None]:
    """One option per FitConfig field (``--learning-rate`` ...), all defaulting to unset."""
    from trainer.config import FitConfig

    aliases = {
        "train_manifest": ["--data"],
        "output_dir": ["--out"],
        "resume_from_checkpoint": ["--resume"],
    }
    hints = typing.get_type_hints(FitConfig)
    for spec in reversed(dataclasses.fields(FitConfig)):
        flag = "--" + spec.name.replace("_", "-")
        names = [flag, *aliases.get(spec.name, [])]
        hint = hints[spec.name]
        if hint is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", spec.name, default=None)
        elif spec.name in CHOICES:
            option = click.option(*names, spec.name, type=click.Choice(CHOICES[spec.name]))
        elif typing.get_origin(hint) is list:
            option = click.option(*names, spec.name, multiple=True, default=None)
        else:
            kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            kind = {Path: click.Path(path_type=Path)}.get(kinds[0], kinds[0])
            option = click.option(*names, spec.name, type=kind, default=None)
        command = option(command)
    return command


@main.command("fit")
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path))
@_fit_options
def fit_command(config_path: Path | None, **flags: object) -> None:
    """Fine-tune a base pipeline (flags override the YAML config's settings)."""
    from trainer.config import load_fit_config
    from trainer.training import fit

    flags = {k: (list(v) if isinstance(v, tuple) else v) for k, v in flags.items()}
    flags = {k: v for k, v in flags.items() if v not in (None, [])}
    result = fit(load_fit_config(config_path, flags))
    metrics = result.summary["metrics"]
    click.echo(
        f"trained {result.global_step} steps; final loss {metrics['final_loss']:.4f}; "
        f"pipeline in {result.pipeline_dir}"
    )
    skipped = result.summary["dataset"]["skipped"]
    if skipped:
        click.echo("skipped: " + ", ".join(f"{n} {why}" for why, n in skipped.items()))


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--tier", default="credentialed", show_default=True, help="Registry access tier.")
@click.option("--dua", default="physionet-credentialed-1.5.0", show_default=True)
@click.option("--base-ref", help="Registry reference of the base, NS/NAME@REV (lineage).")
@click.option("--license", "license_id", default="other", show_default=True)
@click.option("--adapter", is_flag=True, help="LoRA runs: also ship the adapter alone.")
@click.option("--sample-steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--privacy-pairs",
    is_flag=True,
    help="Also publish privacy-pairs.png (it shows training images: only if you approve).",
)
@_inference_options
def export_command(
    run_dir: Path,
    out_dir: Path,
    tier: str,
    dua: str,
    base_ref: str | None,
    license_id: str,
    adapter: bool,
    sample_steps: int,
    privacy_pairs: bool,
    device: str,
    dtype: str,
) -> None:
    """Export a fit run as a diffusers folder with a model card, ready for registry-client push."""
    from trainer.export import export_run

    path = export_run(
        run_dir,
        out_dir,
        tier=tier,
        dua=dua,
        base_ref=base_ref,
        license_id=license_id,
        include_adapter=adapter,
        sample_steps=sample_steps,
        device=device,
        dtype=dtype,
        include_privacy_pairs=privacy_pairs,
    )
    click.echo(f"exported to {path}; next: registry-client push {path} NS/NAME")


@main.command("evaluate")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--per-finding", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--guidance", type=float, default=DEFAULT_GUIDANCE, show_default=True)
@click.option("--resolution", type=click.IntRange(min=16), help="Default: the model's own.")
@click.option("--seed", type=int, default=10_007, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Default: the run.")
@click.option("--utility", is_flag=True, help="Classifier AUROC: real, real+synthetic, synthetic.")
@click.option("--privacy", is_flag=True, help="Nearest training image of generated images.")
@click.option("--diversity", is_flag=True, help="Pairwise MS-SSIM of one prompt vs real.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The real manifest (train split: the training set; validation: held out).",
)
@click.option("--real-count", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--synthetic-count", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--privacy-count", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--diversity-count", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--resamples", type=click.IntRange(min=10), default=1000, show_default=True)
@click.option(
    "--near-copy-distance",
    type=click.FloatRange(min=0),
    help="Pixel RMS distance under which a generated image is a near-copy "
    "(default: half the 5th percentile of the held-out baseline).",
)
@click.option("--fid-manifest", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--feature-extractor",
    help="module:callable mapping (N,3,H,W) in [0,1] to (N,D): FID/KID, and the privacy "
    "check's feature space (default there: a PCA encoder fitted on the training images).",
)
@click.option("--fid-count", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@_inference_options
def evaluate_command(
    model: Path,
    per_finding: int,
    steps: int,
    guidance: float,
    resolution: int | None,
    seed: int,
    out_dir: Path | None,
    utility: bool,
    privacy: bool,
    diversity: bool,
    data: Path | None,
    real_count: int,
    synthetic_count: int,
    privacy_count: int,
    diversity_count: int,
    resamples: int,
    near_copy_distance: float | None,
    fid_manifest: Path | None,
    feature_extractor: str | None,
    fid_count: int,
    batch_size: int,
    device: str,
    dtype: str,
) -> None:
    """Phantom reader accuracy (phantom models only); utility, privacy, diversity, FID/KID.

    Every result is merged into evaluation.json (the run folder, or --out), which export
    puts into the model card.
    """
    from trainer.evaluate import _model_folder, evaluate

    out_dir = out_dir or (model if _model_folder(model) != model else None)
    sampling = {
        "steps": steps,
        "guidance_scale": guidance,
        "resolution": resolution,
        "device": device,
        "dtype": dtype,
        "batch_size": batch_size,
    }
    if fid_manifest is not None:
        if feature_extractor is None:
            raise click.UsageError("--fid-manifest needs --feature-extractor module:callable")
        from trainer.evaluation.results import merge_results
        from trainer.fid import fidelity_for_model, load_feature_extractor

        fidelity = fidelity_for_model(
            model,
            fid_manifest,
            load_feature_extractor(feature_extractor),
            extractor_name=feature_extractor,
            count=fid_count,
            **sampling,
        )
        if out_dir is not None:
            merge_results(out_dir, {"fidelity": fidelity})
        click.echo(f"FID ({feature_extractor}): {fidelity['fid']:.3f}  KID: {fidelity['kid']:.5f}")
        return
    if utility or privacy or diversity:
        if data is None:
            raise click.UsageError("--utility, --privacy and --diversity need --data MANIFEST")
        from trainer.evaluation.report_text import format_sections
        from trainer.evaluation.sampler import open_sampler
        from trainer.evaluation.studies import StudyOptions, run_studies

        sampler = open_sampler(model, seed=seed, **sampling)
        options = StudyOptions(
            real_count=real_count,
            synthetic_count=synthetic_count,
            resamples=resamples,
            privacy_count=privacy_count,
            diversity_count=diversity_count,
            seed=seed,
            thresholds={"pixel": near_copy_distance} if near_copy_distance is not None else {},
        )
        if feature_extractor is not None:
            from trainer.fid import load_feature_extractor

            options.extractor = load_feature_extractor(feature_extractor)
            options.extractor_name = feature_extractor
        sections = run_studies(
            sampler,
            data,
            resolution=sampler.resolution,
            utility=utility,
            privacy=privacy,
            diversity=diversity,
            options=options,
            out_dir=out_dir,
            generation=sampler.describe(),
        )
        click.echo(format_sections(sections))
        return
    report = evaluate(model, per_group=per_finding, seed=seed, out_dir=out_dir, **sampling)
    if report is None:
        from trainer.evaluate import PHANTOM_READER_SKIPPED

        click.echo(f"phantom reader {PHANTOM_READER_SKIPPED}")
        return
    click.echo(report.format_table())


@main.command("import-mimic")
@click.option(
    "--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option(
    "--reports", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--split-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--validation-fraction", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option(
    "--base",
    help="The base pipeline you will fine-tune (folder or NS/NAME[@REV]): its tokenizer "
    "decides what fits in 77 tokens.",
)
@click.option("--tokenizer", "tokenizer_dir", hidden=True, help="Old name of --base.")
@click.option("--scrub-phi/--no-scrub-phi", default=True, show_default=True)
def import_mimic_command(
    root: Path,
    reports: Path,
    out: Path,
    metadata: Path | None,
    split_csv: Path | None,
    validation_fraction: float,
    base: str | None,
    tokenizer_dir: str | None,
    scrub_phi: bool,
) -> None:
    """Make a manifest of MIMIC-CXR-JPG frontal images and their impressions."""
    from transformers import CLIPTokenizer

    from trainer.base_model import resolve_base_model
    from trainer.mimic import import_mimic

    base = base or tokenizer_dir
    if base is None:
        raise click.UsageError(
            "give --base: the pipeline you will fine-tune (its tokenizer decides how much of "
            "each impression fits in 77 tokens)"
        )
    tokenizer = CLIPTokenizer.from_pretrained(resolve_base_model(base).path, subfolder="tokenizer")
    report = import_mimic(
        root,
        reports,
        out,
        tokenizer=tokenizer,
        metadata=metadata,
        split_csv=split_csv,
        validation_fraction=validation_fraction,
        scrub_phi=scrub_phi,
    )
    click.echo(f"wrote {report.written} image-report pairs to {report.manifest}")
    click.echo(f"texts longer than 77 tokens (truncated): {report.truncated}")
    click.echo("patients per split: " + ", ".join(f"{k} {v}" for k, v in report.patients.items()))
    for why, count in report.skipped.items():
        click.echo(f"skipped {count}: {why}")
    if scrub_phi:
        click.echo("PHI scrub: " + _scrub_line(report.phi.to_dict()))


def _scrub_line(counts: dict[str, int]) -> str:
    """``12 of 40 texts changed; dates 3, times 1, ...`` (kinds that were found)."""
    found = [f"{kind.replace('_', ' ')} {n}" for kind, n in list(counts.items())[2:] if n]
    changed = f"{counts['texts_changed']} of {counts['texts']} texts changed"
    return "; ".join([changed, ", ".join(found)]) if found else changed


@main.command("check-manifest")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--show-scrubbed",
    type=click.IntRange(min=0),
    default=0,
    help="Print N texts the PHI scrub changed, before and after.",
)
def check_manifest_command(manifest: Path, show_scrubbed: int) -> None:
    """Read a JSONL/CSV image,text manifest and report usable pairs, skips and PHI found."""
    from trainer.manifest import read_manifest
    from trainer.phi import scrub_texts

    loaded = read_manifest(manifest)
    click.echo(f"{len(loaded.records)} usable pairs under {loaded.image_root}")
    for why, count in loaded.skipped.items():
        click.echo(f"skipped {count}: {why}")
    before = [record.text for record in loaded.records]
    after, counts = scrub_texts(before)
    click.echo("PHI scrub (done by fit): " + _scrub_line(counts.to_dict()))
    emptied = sum(not text for text in after)
    if emptied:
        click.echo(f"texts left empty by the scrub (fit skips them): {emptied}")
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    for old, new in changed[:show_scrubbed]:
        click.echo(f"- {old}\n+ {new}")


if __name__ == "__main__":
    sys.exit(main(prog_name="registry-train"))
