"""The CLI runs as ``python -m trainer.cli`` and under ``accelerate launch`` on two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from diffusers import StableDiffusionPipeline

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def two_process_env() -> dict[str, str]:
    """CPU processes that talk gloo over loopback only."""
    return {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "MASTER_ADDR": "127.0.0.1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_trainer_cli_runs_the_commands(tmp_path: Path) -> None:
    """`python -m trainer.cli ...` (what `accelerate launch -m` runs) used to exit 0 silently."""
    out = tmp_path / "phantoms"
    for module in ("trainer.cli", "trainer"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                module,
                "phantoms",
                "--out",
                str(out),
                "-n",
                "2",
                "--size",
                "32",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "wrote 2 phantoms" in done.stdout
        assert (out / "manifest.jsonl").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "trainer.cli", "fit", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "missing settings: base, train_manifest" in bad.stderr


def test_accelerate_launch_trains_on_two_cpu_processes(
    tiny_base: Path, phantom_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    command = [
        str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "trainer.cli", "--verbose", "fit", "--base", str(tiny_base),
        "--data", str(phantom_manifest), "--out", str(out), "--resolution", "32",
        "--train-batch-size", "2", "--max-train-steps", "3", "--checkpointing-steps", "2",
        "--cache-chunk-size", "8", "--cache-num-workers", "0", "--validation-loss-samples", "4",
        "--validation-inference-steps", "1", "--no-progress-bar",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=two_process_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "trained 3 steps" in done.stdout

    ranks = [json.loads((out / "processes" / f"rank-{i}.json").read_text()) for i in (0, 1)]
    for index, rank in enumerate(ranks):
        assert (rank["process_index"], rank["num_processes"]) == (index, 2)
        assert rank["steps"] == 3 and rank["samples"] == 3 * 2  # each rank its own batches
        assert rank["cache"]["images"]["chunks_computed"], rank  # each cached its share
    assert set(ranks[0]["first_batch_indices"]).isdisjoint(ranks[1]["first_batch_indices"])
    summary = json.loads((out / "summary.json").read_text())
    chunks = -(-summary["dataset"]["examples_selected"] // 8)
    computed = [c for rank in ranks for c in rank["cache"]["images"]["chunks_computed"]]
    assert sorted(computed) == list(range(chunks))
    assert summary["processes"] == 2 and summary["global_step"] == 3

    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-3"]  # nothing half-written left over
    for name in checkpoints:
        files = {p.name for p in (out / "checkpoints" / name).iterdir()}
        assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors",
                "optimizer.bin", "scheduler.bin", "training_state.json"} <= files  # fmt: skip
    pipeline = StableDiffusionPipeline.from_pretrained(out / "pipeline")
    assert pipeline.unet.config.sample_size == 16


def test_a_checkpoint_is_renamed_only_after_every_rank_wrote_its_part(tmp_path: Path) -> None:
    """Rank 1 writes its random state after rank 0 finished: the rename must wait for it."""
    port = free_port()
    processes = []
    for rank in (0, 1):
        env = {**two_process_env(), "RANK": str(rank), "LOCAL_RANK": str(rank)}
        env.update(WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_PORT=str(port))
        processes.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "two_ranks_save_state.py"), str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        try:
            results.append(process.communicate(timeout=120))
        except subprocess.TimeoutExpired:
            process.kill()
            results.append(process.communicate())
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    final = tmp_path / "checkpoints" / "checkpoint-1"
    assert {"random_states_0.pkl", "random_states_1.pkl", "training_state.json"} <= {
        p.name for p in final.iterdir()
    }
    assert not list((tmp_path / "checkpoints").glob("*.partial"))
