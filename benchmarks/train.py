"""Training throughput: ``fit`` against a straightforward baseline loop on the same model.

The baseline is what diffusers' reference ``train_text_to_image.py`` does without extras:
decode and preprocess every image, encode it with the VAE and its report with the text
encoder on every step, fp32, no caching. ``fit`` runs with cached latents and text
embeddings and the chosen precision. Each variant runs in its own process, so peak memory
(CUDA allocator peak, or the process's peak RSS on CPU) is measured separately; both use
the same model, data, batch size and steps in the same invocation.

    python benchmarks/train.py                                   # tiny model on CPU
    python benchmarks/train.py --arch sd15 --resolution 512 --batch-size 8 \
        --mixed-precision bf16 --gradient-checkpointing          # on a GPU: also prints MFU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SD15_TRAIN_FLOP_PER_SAMPLE = 2.41e12  # UNet forward + backward at 512 px (REFERENCE.md)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30, help="measured steps")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured first steps")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="accelerator peak (default: by name)")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--variant", choices=("fit", "baseline"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """A base pipeline of the chosen size and a phantom set at the chosen resolution."""
    from trainer.phantoms import generate_phantoms
    from trainer.tiny import build_base_pipeline

    base = work / f"base-{args.arch}"
    if not (base / "model_index.json").is_file():
        build_base_pipeline(base, arch=args.arch, seed=0)
    manifest = work / f"phantoms-{args.resolution}" / "manifest.jsonl"
    if not manifest.is_file():
        generate_phantoms(manifest.parent, args.images, size=args.resolution, seed=0)
    return base, manifest


def peak_memory() -> int:
    import torch

    from trainer.run_summary import peak_memory_bytes

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return peak_memory_bytes(device)


def run_fit(args: argparse.Namespace, base: Path, manifest: Path, work: Path) -> dict[str, float]:
    """Steady-state samples/s of ``fit`` (steps after the warm-up), cached latents and text."""
    from trainer.config import FitConfig
    from trainer.training import fit

    stamps: list[float] = []
    config = FitConfig(
        base=str(base),
        train_manifest=manifest,
        output_dir=work / "fit-run",
        resolution=args.resolution,
        train_batch_size=args.batch_size,
        max_train_steps=args.warmup + args.steps,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        checkpointing_steps=10**9,
        validation_inference_steps=1,
        validation_prompts=["Small left pleural effusion."],
        progress_bar=False,
    )
    started = time.perf_counter()
    fit(config, on_step=lambda step, loss: stamps.append(time.perf_counter()))
    seconds = stamps[-1] - stamps[args.warmup - 1]
    return {
        "samples_per_second": args.steps * args.batch_size / seconds,
        "wall_seconds_including_caching_and_saving": time.perf_counter() - started,
    }


def run_baseline(args: argparse.Namespace, base: Path, manifest: Path) -> dict[str, float]:
    """diffusers' reference loop: encode images and texts every step, fp32, no caching."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from trainer.images import load_xray, xray_to_tensor
    from trainer.manifest import read_manifest

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder").to(device)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").to(device)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet").to(device)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
    records = read_manifest(manifest).records
    stamps = []
    for step in range(args.warmup + args.steps):
        chosen = [
            records[(step * args.batch_size + i) % len(records)] for i in range(args.batch_size)
        ]
        pixels = torch.stack([xray_to_tensor(load_xray(r.image), args.resolution) for r in chosen])
        ids = tokenizer(
            [r.text for r in chosen],
            padding="max_length",
            truncation=True,
            max_length=tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids.to(device)
        latents = vae.encode(pixels.to(device)).latent_dist.sample() * vae.config.scaling_factor
        hidden = text_encoder(ids)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (len(latents),), device=device
        )
        prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, hidden).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return {
        "samples_per_second": args.steps * args.batch_size / (stamps[-1] - stamps[args.warmup - 1])
    }


def run_variant(args: argparse.Namespace) -> None:
    """Child process: run one variant and print its figures as JSON."""
    work = args.work_dir
    base, manifest = prepare(args, work)
    if args.variant == "fit":
        figures = run_fit(args, base, manifest, work)
    else:
        figures = run_baseline(args, base, manifest)
    figures["peak_memory_bytes"] = peak_memory()
    print("RESULT " + json.dumps(figures))


def device_description() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return f"CPU ({torch.get_num_threads()} threads)", None
    name = torch.cuda.get_device_name()
    peak = next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)
    return name, peak


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.variant:
        run_variant(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work_dir or Path(scratch)
        prepare(args, work)  # built once, outside the measured processes
        results = {}
        for variant in ("baseline", "fit"):
            command = [sys.executable, __file__, *(argv or sys.argv[1:]), "--variant", variant]
            command += ["--work-dir", str(work)] if args.work_dir is None else []
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            line = next(row for row in output.splitlines() if row.startswith("RESULT "))
            results[variant] = json.loads(line.removeprefix("RESULT "))
    device, peak = device_description()
    peak = args.peak_tflops or peak
    print(
        f"device: {device}; arch {args.arch}, {args.resolution} px, batch {args.batch_size}, "
        f"{args.steps} measured steps after {args.warmup}; fit precision {args.mixed_precision}"
    )
    print(f"{'loop':<10}{'samples/s':>12}{'peak memory':>16}{'MFU':>8}")
    for variant, figures in results.items():
        mfu = ""
        if args.arch == "sd15" and args.resolution == 512 and peak:
            flops = figures["samples_per_second"] * SD15_TRAIN_FLOP_PER_SAMPLE
            mfu = f"{flops / (peak * 1e12):.1%}"
        memory = figures["peak_memory_bytes"] / 2**20
        print(f"{variant:<10}{figures['samples_per_second']:>12.2f}{memory:>13.0f} MiB{mfu:>8}")
    speedup = results["fit"]["samples_per_second"] / results["baseline"]["samples_per_second"]
    print(f"fit / baseline throughput: {speedup:.2f}x")


if __name__ == "__main__":
    main()
