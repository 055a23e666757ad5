"""``registry-train``: phantoms, base models, import, fine-tuning, export and evaluation."""

from __future__ import annotations

from pathlib import Path

import click

from trainer.architectures import ARCHITECTURES


@click.group()
def main() -> None:
    """Fine-tune chest X-ray diffusion models and export them for the registry."""


@main.command("init-base")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="tiny", show_default=True)
@click.option(
    "--vae-steps",
    type=click.IntRange(min=0),
    default=400,
    show_default=True,
    help="Steps of VAE pre-training on phantoms (0 keeps a random VAE).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def init_base(out_dir: Path, arch: str, vae_steps: int, seed: int) -> None:
    """Build a base Stable Diffusion pipeline offline (random weights, own tokenizer)."""
    from trainer.tiny import build_base_pipeline

    path = build_base_pipeline(out_dir, arch=arch, seed=seed, vae_pretrain_steps=vae_steps)
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
