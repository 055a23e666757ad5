"""benchmarks/gpu.py runs end to end on CPU with the tiny model, so it works before a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--arch", "tiny", "--smoke", "--out", str(out),
         "--work-dir", str(out.parent / "work"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )  # fmt: skip


def test_gpu_benchmark_smoke_writes_every_figure(tmp_path: Path) -> None:
    done = run_benchmark(tmp_path / "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "out" / "results.json").read_text())
    names = {
        "environment", "prepare", "fit-full-batch2", "fit-full-batch4", "fit-lora-batch2",
        "fit-lora-batch4", "generate-batch1", "generate-batch2", "generate-batch1-compiled",
        "generate-batch2-compiled", "run",
    }  # fmt: skip
    assert set(figures) == names
    assert all(figure["ok"] for figure in figures.values()), figures
    for name in names - {"environment", "prepare", "run"}:
        rate = figures[name].get("samples_per_second") or figures[name].get("images_per_second")
        assert rate > 0, name
    assert figures["fit-lora-batch4"]["resolution"] == 64  # the tiny base's own size
    assert figures["generate-batch2-compiled"]["compiled"] is True
    assert figures["environment"]["hub_offline"] is True  # a GPU box may have no network
    # Only full batches: samples/s once counted a partial last batch as a full one.
    examples = figures["prepare"]["training_examples"]
    assert examples > 0 and examples % 4 == 0
    for name in ("fit-full-batch2", "fit-full-batch4", "fit-lora-batch2", "fit-lora-batch4"):
        assert figures[name]["training_examples"] == examples
    assert figures["run"]["failed"] == [] and figures["run"]["skipped_for_time"] == []
    assert figures["run"]["total_seconds"] < figures["run"]["budget_seconds"]
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == list(figures)


def test_a_failing_measurement_is_recorded_and_the_rest_still_run(tmp_path: Path) -> None:
    done = run_benchmark(
        tmp_path / "out", "--fit-batch-sizes", "0,2", "--modes", "lora",
        "--generate-batch-sizes", "1", "--no-compile",
    )  # fmt: skip
    assert done.returncode == 1
    figures = json.loads((tmp_path / "out" / "results.json").read_text())
    error = figures["fit-lora-batch0"]["error"]
    assert error["type"] == "ConfigError" and "train_batch_size" in error["message"]
    assert figures["fit-lora-batch2"]["ok"] and figures["generate-batch1"]["ok"]


def test_a_measurement_still_running_when_the_budget_ends_is_stopped() -> None:
    from benchmarks.gpu import measure

    started = time.monotonic()
    figures = measure(lambda: time.sleep(30) or {}, seconds_left=0.5)
    assert time.monotonic() - started < 10
    assert not figures["ok"] and figures["error"]["type"] == "OutOfTime"
    assert measure(lambda: {"x": 1}, seconds_left=5) == {"ok": True, "x": 1, "seconds": ANY}
    time.sleep(5.5)  # the alarm of the finished measurement was cancelled: nothing fires


def test_the_watchdog_ends_a_run_that_outlives_its_budget(tmp_path: Path) -> None:
    """Whatever hangs (a compile, a driver call), the process ends soon after the budget."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from benchmarks.gpu import WATCHDOG_GRACE_SECONDS, Results, start_watchdog\n"
        "results = Results(Path(sys.argv[1]))\n"
        "results.record('fit-full-batch8', {'ok': True, 'samples_per_second': 1.0})\n"
        "start_watchdog(results, time.monotonic() - WATCHDOG_GRACE_SECONDS + 1)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3 and time.monotonic() - started < 30, done.stderr
    figures = json.loads((tmp_path / "results.json").read_text())
    assert figures["fit-full-batch8"]["ok"]  # what was measured before stays
    assert figures["watchdog"]["error"]["type"] == "Watchdog"


def test_the_sd15_run_without_cuda_stops_at_once_and_says_why(tmp_path: Path) -> None:
    """A CPU build of torch on the GPU box would spend 6 minutes measuring nothing."""
    if "cuda" in subprocess.run([sys.executable, "-c", "import torch; print("
                                 "'cuda' if torch.cuda.is_available() else 'cpu')"],
                                capture_output=True, text=True).stdout:  # fmt: skip
        pytest.skip("this machine has CUDA")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - started < 60
    figures = json.loads((tmp_path / "out" / "results.json").read_text())
    assert figures["device"]["error"]["type"] == "NoCUDA"
    assert "CUDA build of torch" in figures["device"]["error"]["message"]
    assert "prepare" not in figures and figures["run"]["failed"] == ["device"]


def test_the_mfu_constants_match_a_flop_count_of_the_sd15_unet() -> None:
    """MFU divides by these: counted here on the meta device (no weights, no time)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.gpu import GENERATE_TFLOP_PER_IMAGE, TRAIN_TFLOP_PER_SAMPLE
    from trainer.architectures import load_config

    with torch.device("meta"):
        unet = UNet2DConditionModel(**load_config("sd15_unet"))
        unet.set_attn_processor(AttnProcessor2_0())
        latents, context = torch.randn(1, 4, 64, 64), torch.randn(1, 77, 768)
        timestep = torch.tensor([500])
    with FlopCounterMode(display=False) as forward:
        unet(latents, timestep, context)
    with FlopCounterMode(display=False) as training:
        unet(latents, timestep, context).sample.sum().backward()
    forward_tflop = forward.get_total_flops() / 1e12
    assert abs(training.get_total_flops() / 1e12 - TRAIN_TFLOP_PER_SAMPLE["full"]) < 0.02
    assert abs(2 * forward_tflop - TRAIN_TFLOP_PER_SAMPLE["lora"]) < 0.02  # + input grads
    with torch.device("meta"):
        vae = AutoencoderKL(**load_config("sd15_vae"))
    with FlopCounterMode(display=False) as decode:
        vae.decode(latents)
    vae_decode = decode.get_total_flops() / 1e12
    guided_steps = 25 * 2 * forward_tflop
    assert abs(guided_steps + vae_decode - GENERATE_TFLOP_PER_IMAGE) < 0.2


def test_a_fit_out_of_gpu_memory_is_measured_again_with_gradient_checkpointing(
    tiny_base: Path, phantom_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full fine-tuning at batch 32 may not fit in 80 GB: a figure, not only an error."""
    import torch

    import trainer.training
    from benchmarks.gpu import parse_args, run_fit, training_examples

    real_fit, attempts = trainer.training.fit, []

    def fit_without_memory(config, **kwargs):
        attempts.append(config.gradient_checkpointing)
        if not config.gradient_checkpointing:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_fit(config, **kwargs)

    monkeypatch.setattr(trainer.training, "fit", fit_without_memory)
    args = parse_args(["--out", str(tmp_path / "out"), "--arch", "tiny", "--smoke"])
    args.device, args.peak_tflops = "cpu", None
    examples = training_examples(phantom_manifest, [2])
    figures = run_fit(args, tiny_base, phantom_manifest, tmp_path, "full", 2, examples)
    assert attempts == [False, True]
    assert figures["gradient_checkpointing"] is True and figures["samples_per_second"] > 0
    assert "Tried to allocate 2.00 GiB" in figures["retried_after"]
