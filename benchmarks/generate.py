"""Generation speed: ``registry-client generate`` defaults vs a stock diffusers pipeline.

Builds a pipeline offline (``--arch tiny`` for CPU, ``--arch sd15`` for a GPU; random
weights, real sizes), then in the same run samples ``-n`` images with

- the client's ``generate`` defaults (DPM-Solver++ multistep, 25 steps, guidance 3, per-image
  seeds, PNGs with provenance written; on CUDA bf16/fp16 + SDPA + channels-last), and
- a stock ``StableDiffusionPipeline.from_pretrained(folder)`` with its saved scheduler and
  default call settings (50 steps, guidance 7.5), same dtype, device and batch size,

and prints images/s for both (sampling only, the pipelines already loaded) and the ratio.

    .venv/bin/python -m benchmarks.generate --threads 1      # tiny model, busy shared CPU
    .venv/bin/python -m benchmarks.generate --arch sd15 -n 16  # on a GPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PROMPT = "Moderate left pleural effusion. Heart size is normal. No pneumothorax."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("-n", type=int, default=8, help="images per pipeline")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the client")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import StableDiffusionPipeline

    from client.generate import GenerateOptions, Provenance, generate, load_pipeline
    from trainer.tiny import build_base_pipeline

    with tempfile.TemporaryDirectory(prefix="generate-bench-") as tmp:
        folder = build_base_pipeline(Path(tmp) / "model", arch=args.arch, seed=0)
        options = GenerateOptions(
            prompts=[PROMPT], n=args.n, batch_size=args.batch_size, device=args.device,
            compile=args.compile, quiet=True,
        )  # fmt: skip
        loaded = load_pipeline(folder, options)
        _, device, dtype = loaded
        warm = GenerateOptions(prompts=[PROMPT], n=1, steps=2, device=args.device, quiet=True)
        generate(folder, Path(tmp) / "warm", warm, Provenance("bench", "warm-up"), loaded=loaded)
        start = time.perf_counter()
        generate(folder, Path(tmp) / "client", options, Provenance("bench", args.arch),
                 loaded=loaded)  # fmt: skip
        client_rate = args.n / (time.perf_counter() - start)
        del loaded

        stock = StableDiffusionPipeline.from_pretrained(str(folder), torch_dtype=dtype).to(device)
        stock.set_progress_bar_config(disable=True)
        stock(PROMPT, num_inference_steps=2)  # warm-up
        start = time.perf_counter()
        made = 0
        while made < args.n:
            count = min(args.batch_size, args.n - made)
            stock(PROMPT, num_images_per_prompt=count)
            made += count
        stock_rate = args.n / (time.perf_counter() - start)
        scheduler = type(stock.scheduler).__name__

    print(f"model: {args.arch}, device: {device}, dtype: {str(dtype).removeprefix('torch.')}, "
          f"{args.n} images, batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    rows = [
        ("registry-client generate (DPM-Solver++, 25 steps)", f"{client_rate:8.2f} images/s"),
        (f"stock pipeline ({scheduler}, 50 steps)", f"{stock_rate:8.2f} images/s"),
        ("ratio client / stock", f"{client_rate / stock_rate:8.2f}"),
    ]
    for label, value in rows:
        print(f"  {label:<56} {value}")


if __name__ == "__main__":
    main()
