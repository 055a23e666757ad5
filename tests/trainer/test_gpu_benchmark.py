"""benchmarks/gpu.py runs end to end on CPU with the tiny model, so it works before a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        "generate-batch2-compiled",
    }  # fmt: skip
    assert set(figures) == names
    assert all(figure["ok"] for figure in figures.values()), figures
    for name in names - {"environment", "prepare"}:
        rate = figures[name].get("samples_per_second") or figures[name].get("images_per_second")
        assert rate > 0, name
    assert figures["fit-lora-batch4"]["resolution"] == 64  # the tiny base's own size
    assert figures["generate-batch2-compiled"]["compiled"] is True
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
