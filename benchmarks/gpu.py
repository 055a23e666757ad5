"""One prepared GPU benchmark: SD-1.5-shaped ``fit`` and ``generate``, every figure as JSON.

On a CUDA machine it builds an SD-1.5-shaped base once (random weights, offline), then times

- ``fit`` (the trainer's own loop: cached latents and text embeddings, bf16 autocast) in full
  fine-tune and LoRA mode at batch 8 and 32: samples/s after a warm-up, MFU against the
  device's bf16 peak, peak CUDA memory;
- ``generate`` (``registry-client generate``'s code path: DPM-Solver++, 25 steps,
  classifier-free guidance) at 512 px, batch 1 and 8, eager and ``torch.compile``: img/s,
  MFU, peak memory, and the compile warm-up time.

Each measurement runs in its own try/except: a failure (out of memory, a compile error) is
written with its type and message and the script goes on; the exit status is 1 if any
measurement failed. ``--out`` receives ``results.json`` (rewritten after every measurement,
so a killed run keeps what it measured) and ``results.jsonl`` (one line per measurement).
A time budget (default 330 s) skips what would not finish, and says so.

    python -m benchmarks.gpu --out gpu-results               # CUDA, SD-1.5 shape, < 6 min
    python -m benchmarks.gpu --arch tiny --smoke --out /tmp/g # CPU, seconds (the CI test)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Dense bf16 peaks (TFLOP/s) by device name; the first matching entry wins.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 125.0),
)
# REFERENCE.md: SD 1.5 UNet at 512 px, forward 0.803 TFLOP; training forward + backward 2.41;
# LoRA skips the frozen weights' gradients (forward + input gradients, about 2 forwards);
# one guided 25-step image with its VAE decode 42.7.
TRAIN_TFLOP_PER_SAMPLE = {"full": 2.41, "lora": 1.61}
GENERATE_TFLOP_PER_IMAGE = 42.7
PROMPT = "Moderate left pleural effusion. Heart size is normal. No pneumothorax."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON figures")
    parser.add_argument("--arch", choices=("sd15", "tiny"), default="sd15")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cuda or cpu")
    parser.add_argument("--fit-batch-sizes", default=None, help="default 8,32 (smoke: 2,4)")
    parser.add_argument("--generate-batch-sizes", default=None, help="default 1,8 (smoke: 1,2)")
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--budget-seconds", type=float, default=330.0)
    parser.add_argument("--compile-backend", default=None, help="default inductor (smoke: eager)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled runs")
    parser.add_argument("--work-dir", type=Path, help="reuse a base built by an earlier run")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.fit_batch_sizes = _ints(args.fit_batch_sizes or ("2,4" if smoke else "8,32"))
    args.generate_batch_sizes = _ints(args.generate_batch_sizes or ("1,2" if smoke else "1,8"))
    args.modes = args.modes.split(",")
    args.compile_backend = args.compile_backend or ("eager" if smoke else "inductor")
    args.warmup, args.steps = (1, 2) if smoke else (3, 10)
    args.generate_steps = 2 if smoke else 25
    args.images = 12 if smoke else 48
    return args


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


class Results:
    """Figures by name, written to disk after every measurement."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.figures: dict[str, Any] = {}

    def record(self, name: str, figures: dict[str, Any]) -> None:
        self.figures[name] = figures
        partial = self.out / "results.json.partial"
        partial.write_text(json.dumps(self.figures, indent=2) + "\n", "utf-8")
        os.replace(partial, self.out / "results.json")
        with (self.out / "results.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"name": name, **figures}) + "\n")
        status = "ok" if figures.get("ok") else figures.get("skipped") or figures.get("error")
        shown = {k: v for k, v in figures.items() if isinstance(v, int | float) and k != "ok"}
        print(f"{name}: {status} {json.dumps(shown)}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [name for name, f in self.figures.items() if f.get("error")]


def measure(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure becomes its type and message (never silent)."""
    import torch

    started = time.perf_counter()
    try:
        figures = {"ok": True, **action()}
    except Exception as exc:  # recorded below: each measurement must not stop the others
        figures = {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "message": str(exc)[:2000],
                "where": traceback.format_exc(limit=-3)[-2000:],
            },
        }
    figures["seconds"] = round(time.perf_counter() - started, 3)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return figures


def environment(device: str) -> dict[str, Any]:
    import accelerate
    import diffusers
    import torch
    import transformers

    info: dict[str, Any] = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda":
        name = torch.cuda.get_device_name()
        info.update(
            gpu=name,
            gpu_memory_bytes=torch.cuda.get_device_properties(0).total_memory,
            cuda=torch.version.cuda,
            peak_bf16_tflops=next((p for key, p in PEAK_BF16_TFLOPS if key in name), None),
        )
    return info


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """The base (built once) and a small phantom set (fit resizes it to the base's size)."""
    from trainer.phantoms import generate_phantoms
    from trainer.tiny import build_base_pipeline

    base = work / f"base-{args.arch}"
    if not (base / "model_index.json").is_file():
        build_base_pipeline(base, arch=args.arch, seed=0)
    manifest = work / "phantoms" / "manifest.jsonl"
    if not manifest.is_file():
        generate_phantoms(manifest.parent, args.images, size=128, seed=0)
    return base, manifest


class _Measured(Exception):
    """Raised from fit's step callback once the measured steps are done (skips the saving)."""


def _peak_memory(device: str) -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device == "cuda" else None


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def run_fit(
    args: argparse.Namespace, base: Path, manifest: Path, work: Path, mode: str, batch: int
) -> dict[str, Any]:
    """Steady-state samples/s of ``fit`` after ``warmup`` steps."""
    import torch

    from trainer.config import FitConfig
    from trainer.training import fit

    output = work / f"fit-{mode}-{batch}"
    output.mkdir(parents=True, exist_ok=True)
    shared_cache = work / "cache"  # latents and text embeddings encoded once for all runs
    shared_cache.mkdir(exist_ok=True)
    if not (output / "cache").exists():
        (output / "cache").symlink_to(shared_cache)
    config = FitConfig(
        base=str(base),
        train_manifest=manifest,
        output_dir=output,
        mode=mode,
        train_batch_size=batch,
        max_train_steps=args.warmup + args.steps,
        learning_rate=1e-5 if mode == "full" else 1e-4,
        mixed_precision="bf16",
        checkpointing_steps=10**9,
        validation_loss_samples=0,
        validation_inference_steps=1,
        cache_num_workers=0 if args.smoke else None,
        progress_bar=False,
    )
    stamps: list[float] = []

    def on_step(step: int, loss: float) -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        if step == args.warmup + args.steps:
            raise _Measured

    _reset_peak(args.device)
    with contextlib.suppress(_Measured):  # measured steps done; saving is not what we time
        fit(config, on_step=on_step)
    seconds = stamps[-1] - stamps[args.warmup - 1]
    samples_per_second = args.steps * batch / seconds
    return {
        "mode": mode,
        "batch_size": batch,
        "resolution": config.resolution or _native_resolution(base),
        "mixed_precision": "bf16",
        "measured_steps": args.steps,
        "samples_per_second": samples_per_second,
        "seconds_per_step": seconds / args.steps,
        "mfu": _mfu(args, samples_per_second * TRAIN_TFLOP_PER_SAMPLE[mode]),
        "peak_memory_bytes": _peak_memory(args.device),
    }


def run_generate(
    args: argparse.Namespace, base: Path, work: Path, batch: int, compiled: bool
) -> dict[str, Any]:
    """img/s of the client's ``generate`` (pipeline loaded and warmed up first)."""
    import torch

    from client.generate import GenerateOptions, Provenance, generate, load_pipeline

    count = batch * 2 if batch > 1 else 4
    options = GenerateOptions(
        prompts=[PROMPT],
        n=count,
        batch_size=batch,
        steps=args.generate_steps,
        device=args.device,
        quiet=True,
    )
    loaded = load_pipeline(base, options)
    pipe = loaded[0]
    if compiled:
        pipe.unet = torch.compile(pipe.unet, backend=args.compile_backend)
    provenance = Provenance("benchmark", args.arch)
    warm = GenerateOptions(
        prompts=[PROMPT], n=batch, batch_size=batch, steps=2, device=args.device, quiet=True
    )
    warm_started = time.perf_counter()
    generate(base, work / "warm", warm, provenance, loaded=loaded)
    warm_seconds = time.perf_counter() - warm_started
    _reset_peak(args.device)
    started = time.perf_counter()
    generate(base, work / f"generate-{batch}-{compiled}", options, provenance, loaded=loaded)
    if args.device == "cuda":
        torch.cuda.synchronize()
    images_per_second = count / (time.perf_counter() - started)
    resolution = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    return {
        "batch_size": batch,
        "compiled": compiled,
        "compile_backend": args.compile_backend if compiled else None,
        "resolution": resolution,
        "steps": args.generate_steps,
        "guidance": options.guidance,
        "images": count,
        "dtype": str(loaded[2]).removeprefix("torch."),
        "images_per_second": images_per_second,
        "warmup_seconds": warm_seconds,
        "mfu": _mfu(args, images_per_second * GENERATE_TFLOP_PER_IMAGE),
        "peak_memory_bytes": _peak_memory(args.device),
    }


def _native_resolution(base: Path) -> int:
    unet = json.loads((base / "unet" / "config.json").read_text("utf-8"))
    vae = json.loads((base / "vae" / "config.json").read_text("utf-8"))
    return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)


def _mfu(args: argparse.Namespace, tflops_done: float) -> float | None:
    """Share of the device's bf16 peak; only for the SD-1.5 shape on a known GPU."""
    peak = args.peak_tflops
    return round(tflops_done / peak, 4) if peak and args.arch == "sd15" else None


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.budget_seconds
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.jsonl").unlink(missing_ok=True)
    results = Results(args.out)
    args.device = _resolve_device(args.device)
    info = measure(lambda: environment(args.device))
    results.record("environment", info)
    args.peak_tflops = info.get("peak_bf16_tflops")
    if args.device == "cuda" and args.arch == "sd15" and not args.smoke:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}

        def do_prepare() -> dict[str, Any]:
            paths["base"], paths["manifest"] = prepare(args, work)
            return {"arch": args.arch, "base_resolution": _native_resolution(paths["base"])}

        prepared = measure(do_prepare)
        results.record("prepare", prepared)
        if not prepared["ok"]:
            return 1
        base, manifest = paths["base"], paths["manifest"]
        plan: list[tuple[str, float, Callable[[], dict[str, Any]]]] = []
        for mode in args.modes:
            for batch in args.fit_batch_sizes:
                plan.append(
                    (
                        f"fit-{mode}-batch{batch}",
                        0.0,
                        lambda m=mode, b=batch: run_fit(args, base, manifest, work, m, b),
                    )
                )
        compile_estimate = 0.0 if args.smoke else 90.0  # inductor's first SD UNet compile
        for compiled in (False,) if args.no_compile else (False, True):
            for batch in args.generate_batch_sizes:
                name = f"generate-batch{batch}" + ("-compiled" if compiled else "")
                plan.append(
                    (
                        name,
                        compile_estimate if compiled else 0.0,
                        lambda b=batch, c=compiled: run_generate(args, base, work, b, c),
                    )
                )
        for name, estimate, action in plan:
            left = deadline - time.monotonic()
            if left < estimate + 5:
                skipped = f"time budget: {left:.0f} s left, needs about {estimate:.0f} s"
                results.record(name, {"ok": False, "skipped": skipped})
                continue
            results.record(name, measure(action))
    failed = results.failed
    print(f"wrote {args.out / 'results.json'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
