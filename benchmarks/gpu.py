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

A time budget (default 330 s, counted from the start) keeps the whole run under 6 minutes:
a measurement is skipped when the time left is less than it needs (estimated from the same
kind of measurement already done), one still running when the budget ends is stopped and
recorded as such, and a watchdog ends the process 20 s after the budget whatever it is
doing. Nothing is downloaded: the Hugging Face libraries run offline (the base is built
locally, the data are phantoms). Training batches are always full (the number of training
images used is a multiple of every batch size), so samples/s counts what was trained.

    python -m benchmarks.gpu --out gpu-results               # CUDA, SD-1.5 shape, < 6 min
    python -m benchmarks.gpu --arch tiny --smoke --out /tmp/g # CPU, seconds (the CI test)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import sys
import tempfile
import threading
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
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H800", 989.0),
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
# Set before any Hugging Face library is imported (they read these once, at import).
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
}
WATCHDOG_GRACE_SECONDS = 20.0
# Seconds a measurement of each kind needs on a H100/H200 before one has been timed here.
FIRST_ESTIMATES = {"fit": 30.0, "generate": 15.0, "generate-compiled": 90.0}


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
    # Enough phantoms that ~90 % of them (the train split) hold two of the largest batch.
    args.images = max(12 if smoke else 48, math.ceil(2.4 * max(args.fit_batch_sizes)))
    return args


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


class Results:
    """Figures by name, written to disk after every measurement."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.figures: dict[str, Any] = {}
        self.lock = threading.Lock()  # the watchdog thread records too

    def record(self, name: str, figures: dict[str, Any]) -> None:
        with self.lock:
            self._write(name, figures)

    def _write(self, name: str, figures: dict[str, Any]) -> None:
        self.figures[name] = figures
        partial = self.out / "results.json.partial"
        partial.write_text(json.dumps(self.figures, indent=2, default=str) + "\n", "utf-8")
        os.replace(partial, self.out / "results.json")
        with (self.out / "results.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"name": name, **figures}, default=str) + "\n")
        status = "ok" if figures.get("ok") else figures.get("skipped") or figures.get("error")
        shown = {k: v for k, v in figures.items() if isinstance(v, int | float) and k != "ok"}
        print(f"{name}: {status} {json.dumps(shown)}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [name for name, f in self.figures.items() if f.get("error")]


class OutOfTime(BaseException):
    """The time budget ended during a measurement (a BaseException: no library catches it)."""


def _out_of_time(signum: int, frame: object) -> None:
    raise OutOfTime("the time budget ended before this measurement finished")


def measure(action: Callable[[], dict[str, Any]], seconds_left: float | None = None) -> dict:
    """Run one measurement; a failure becomes its type and message (never silent).

    With ``seconds_left`` the measurement is stopped (SIGALRM) when that much time has gone.
    """
    import torch

    started = time.perf_counter()
    timed = (
        seconds_left is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()  # signals need it
    )
    if timed:
        previous = signal.signal(signal.SIGALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_REAL, max(seconds_left, 0.01))
    try:
        figures = {"ok": True, **action()}
    except (Exception, OutOfTime) as exc:  # recorded: one must not stop the others
        figures = {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "message": str(exc)[:2000],
                "where": traceback.format_exc(limit=-3)[-2000:],
            },
        }
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
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
    from huggingface_hub import constants as hub_constants

    info: dict[str, Any] = {
        "device": device,
        "hub_offline": bool(hub_constants.HF_HUB_OFFLINE),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "cpu_count": os.cpu_count(),
        "torch_cuda_build": torch.version.cuda,
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
    manifest = work / f"phantoms-{args.images}" / "manifest.jsonl"
    if not manifest.is_file():
        generate_phantoms(manifest.parent, args.images, size=128, seed=0)
    return base, manifest


def training_examples(manifest: Path, batch_sizes: list[int]) -> int:
    """How many training images to use: the most that every batch size divides.

    A partial last batch would make samples/s count samples that were not trained on, and
    one count for all runs lets them share one cache of latents.
    """
    from trainer.manifest import read_manifest

    available = len(read_manifest(manifest).select("train"))
    step = math.lcm(*batch_sizes)
    if available < step:
        raise ValueError(
            f"{available} training phantoms cannot fill batches of {batch_sizes} evenly"
        )
    return available - available % step


class _Measured(Exception):
    """Raised from fit's step callback once the measured steps are done (skips the saving)."""


def _peak_memory(device: str) -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device == "cuda" else None


def _memory_allocated(device: str) -> int | None:
    import torch

    return int(torch.cuda.memory_allocated()) if device == "cuda" else None


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def run_fit(
    args: argparse.Namespace,
    base: Path,
    manifest: Path,
    work: Path,
    mode: str,
    batch: int,
    examples: int,
) -> dict[str, Any]:
    """Steady-state samples/s of ``fit`` after ``warmup`` steps (full batches only).

    A run out of GPU memory is repeated once with gradient checkpointing (full fine-tuning
    at batch 32 may not fit in 80 GB without it), and says so.
    """
    import torch

    try:
        return _timed_fit(args, base, manifest, work, mode, batch, examples, checkpointing=False)
    except torch.cuda.OutOfMemoryError as exc:
        first_error = str(exc).splitlines()[0][:300] if str(exc) else "out of memory"
    gc.collect()  # the failed run's models and optimizer went with its traceback
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    figures = _timed_fit(args, base, manifest, work, mode, batch, examples, checkpointing=True)
    figures["retried_after"] = f"out of memory without gradient checkpointing: {first_error}"
    return figures


def _timed_fit(
    args: argparse.Namespace,
    base: Path,
    manifest: Path,
    work: Path,
    mode: str,
    batch: int,
    examples: int,
    *,
    checkpointing: bool,
) -> dict[str, Any]:
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
        max_train_samples=examples,
        max_train_steps=args.warmup + args.steps,
        learning_rate=1e-5 if mode == "full" else 1e-4,
        mixed_precision="bf16",
        gradient_checkpointing=checkpointing,
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

    if examples % batch:
        raise ValueError(f"{examples} examples do not fill batches of {batch}")
    _reset_peak(args.device)
    at_start = _memory_allocated(args.device)  # what an earlier run left behind
    started = time.perf_counter()
    with contextlib.suppress(_Measured):  # measured steps done; saving is not what we time
        fit(config, on_step=on_step)
    if len(stamps) < args.warmup + args.steps:
        raise RuntimeError(f"fit stopped after {len(stamps)} of {args.warmup + args.steps} steps")
    seconds = stamps[-1] - stamps[args.warmup - 1]
    samples_per_second = args.steps * batch / seconds
    return {
        "mode": mode,
        "batch_size": batch,
        "training_examples": examples,
        "gradient_checkpointing": checkpointing,
        "setup_seconds": stamps[0] - started,  # load, cache (first run only), first step
        "resolution": config.resolution or _native_resolution(base),
        "mixed_precision": "bf16",
        "measured_steps": args.steps,
        "samples_per_second": samples_per_second,
        "seconds_per_step": seconds / args.steps,
        # model FLOPs only: with gradient checkpointing the recomputed forward is not counted
        "mfu": _mfu(args, samples_per_second * TRAIN_TFLOP_PER_SAMPLE[mode]),
        "peak_memory_bytes": _peak_memory(args.device),
        "memory_at_start_bytes": at_start,
    }


def run_generate(
    args: argparse.Namespace, base: Path, work: Path, batch: int, compiled: bool
) -> dict[str, Any]:
    """img/s of the client's ``generate`` (pipeline loaded and warmed up first)."""
    import torch

    from client.generate import GenerateOptions, Provenance, generate, load_pipeline

    count = batch * 2 if batch > 1 else 4
    # inductor: exactly `registry-client generate --compile`; another backend (the CPU smoke
    # run's eager, which needs no C++ compiler) is applied here the same way.
    client_compile = compiled and args.compile_backend == "inductor"
    options = GenerateOptions(
        prompts=[PROMPT],
        n=count,
        batch_size=batch,
        steps=args.generate_steps,
        device=args.device,
        compile=client_compile,
        quiet=True,
    )
    loaded = load_pipeline(base, options)
    pipe = loaded[0]
    if compiled and not client_compile:
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


def start_watchdog(results: Results, deadline: float) -> threading.Event:
    """End the process WATCHDOG_GRACE_SECONDS after the budget unless the event is set."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(max(0.0, deadline + WATCHDOG_GRACE_SECONDS - time.monotonic())):
            return
        if results.lock.acquire(timeout=5):
            results._write("watchdog", {"ok": False, "error": {"type": "Watchdog",
                           "message": "still running after the time budget: stopped"}})  # fmt: skip
        print("watchdog: the time budget is spent; stopping", flush=True)
        os._exit(3)

    threading.Thread(target=watch, name="budget-watchdog", daemon=True).start()
    return done


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    for name, value in OFFLINE.items():
        os.environ[name] = value  # nothing may be downloaded (a GPU box may have no network)
    args = parse_args(argv)
    deadline = started + args.budget_seconds
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.jsonl").unlink(missing_ok=True)
    results = Results(args.out)
    watchdog = start_watchdog(results, deadline)
    try:
        return _run(args, results, started, deadline)
    finally:
        watchdog.set()


def _run(args: argparse.Namespace, results: Results, started: float, deadline: float) -> int:
    """Everything after the setup of ``main``: environment, prepare, the measurements."""
    if args.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "1"  # fit's accelerator too, on a CUDA machine
    requested, args.device = args.device, _resolve_device(args.device)
    info = measure(lambda: environment(args.device))
    results.record("environment", info)
    if args.arch == "sd15" and not args.smoke and args.device != "cuda" and requested == "auto":
        # SD 1.5 on a CPU would spend the whole budget on the first step and measure nothing.
        message = (
            f"no CUDA device: torch {info.get('torch')} (CUDA build: "
            f"{info.get('torch_cuda_build')}) sees none; install a CUDA build of torch, or "
            "give --device cpu (slow) or --arch tiny --smoke"
        )
        results.record("device", {"ok": False, "error": {"type": "NoCUDA", "message": message}})
        return finish(args, results, started)
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
            sizes["examples"] = training_examples(
                paths["manifest"], [b for b in args.fit_batch_sizes if b > 0] or [1]
            )
            return {
                "arch": args.arch,
                "base_resolution": _native_resolution(paths["base"]),
                "phantoms": args.images,
                "training_examples": sizes["examples"],
            }

        sizes: dict[str, int] = {}
        prepared = measure(do_prepare, deadline - time.monotonic())
        results.record("prepare", prepared)
        if not prepared["ok"]:
            return finish(args, results, started)
        base, manifest, examples = paths["base"], paths["manifest"], sizes["examples"]
        plan: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []
        for mode in args.modes:
            for batch in args.fit_batch_sizes:
                plan.append(
                    (
                        f"fit-{mode}-batch{batch}",
                        "fit",
                        lambda m=mode, b=batch: run_fit(args, base, manifest, work, m, b, examples),
                    )
                )
        for compiled in (False,) if args.no_compile else (False, True):
            for batch in args.generate_batch_sizes:
                plan.append(
                    (
                        f"generate-batch{batch}" + ("-compiled" if compiled else ""),
                        "generate-compiled" if compiled else "generate",
                        lambda b=batch, c=compiled: run_generate(args, base, work, b, c),
                    )
                )
        estimates = {kind: 0.0 if args.smoke else s for kind, s in FIRST_ESTIMATES.items()}
        for name, kind, action in plan:
            left = deadline - time.monotonic()
            if left < estimates[kind] + 5:
                skipped = f"time budget: {left:.0f} s left, needs about {estimates[kind]:.0f} s"
                results.record(name, {"ok": False, "skipped": skipped})
                continue
            figures = measure(action, left)
            if figures["ok"]:  # the next of its kind takes about as long (larger: longer)
                estimates[kind] = max(estimates[kind], figures["seconds"])
            results.record(name, figures)
    return finish(args, results, started)


def finish(args: argparse.Namespace, results: Results, started: float) -> int:
    """Record the totals; exit status 1 if any measurement failed."""
    failed = results.failed
    skipped = [name for name, f in results.figures.items() if f.get("skipped")]
    total = {"total_seconds": round(time.monotonic() - started, 3), "budget_seconds":
             args.budget_seconds, "failed": failed, "skipped_for_time": skipped}  # fmt: skip
    results.record("run", {"ok": not failed, **total})
    print(f"wrote {args.out / 'results.json'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every figure is on disk: do not wait on what interpreter shutdown may hang on
    # (inductor's compile workers, DataLoader workers, CUDA teardown).
    os._exit(status)
