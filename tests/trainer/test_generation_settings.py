"""Commands that generate take --device/--dtype and share one guidance default with the client."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from client.cli import main as client_main
from client.generate import GenerateOptions
from trainer.cli import main
from trainer.training import fit


@pytest.fixture(scope="module")
def run_32px(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, phantom_manifest: Path):
    from trainer.config import FitConfig

    config = FitConfig(
        base=str(tiny_base), train_manifest=phantom_manifest,
        output_dir=tmp_path_factory.mktemp("settings") / "run", resolution=32,
        train_batch_size=4, max_train_steps=1, validation_inference_steps=1,
        validation_dtype="bf16", progress_bar=False,
    )  # fmt: skip
    return fit(config)


def evaluate_cli(run: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        main,
        ["evaluate", str(run), "--per-finding", "1", "--steps", "2", "--out", str(out), *extra],
    )


def test_evaluate_takes_device_and_dtype_and_records_them(run_32px, tmp_path: Path) -> None:
    """evaluate always ran in fp32 on the CPU (~33 s per guided step for SD 1.5 at 512 px)."""
    fp32 = evaluate_cli(run_32px.output_dir, tmp_path / "fp32", "--device", "cpu")
    bf16 = evaluate_cli(
        run_32px.output_dir, tmp_path / "bf16", "--device", "cpu", "--dtype", "bf16"
    )
    for result in (fp32, bf16):
        assert result.exit_code == 0, result.output
    settings = {
        name: json.loads((tmp_path / name / "evaluation.json").read_text())["settings"]
        for name in ("fp32", "bf16")
    }
    assert (settings["fp32"]["device"], settings["fp32"]["dtype"]) == ("cpu", "float32")
    assert (settings["bf16"]["device"], settings["bf16"]["dtype"]) == ("cpu", "bfloat16")
    grids = [np.asarray(Image.open(tmp_path / n / "evaluation.png"), float) for n in settings]
    assert grids[0].shape == grids[1].shape and np.abs(grids[0] - grids[1]).max() > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_one_line_error(run_32px, tmp_path: Path) -> None:
    result = evaluate_cli(run_32px.output_dir, tmp_path / "never", "--device", "cuda")
    assert result.exit_code == 1 and "no CUDA device" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "never").exists()
    exported = CliRunner().invoke(
        main, ["export", str(run_32px.output_dir), "--out", str(tmp_path / "e"), "--device", "cuda"]
    )
    assert exported.exit_code == 1 and not (tmp_path / "e").exists()


def test_fit_validation_and_export_samples_use_the_asked_dtype(run_32px, tmp_path: Path) -> None:
    assert run_32px.summary["validation_sampling"] == {"device": "cpu", "dtype": "bfloat16"}
    result = CliRunner().invoke(
        main,
        ["export", str(run_32px.output_dir), "--out", str(tmp_path / "export"),
         "--sample-steps", "1", "--device", "cpu", "--dtype", "bf16"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "export" / "samples.png").is_file()


def test_evaluate_and_generate_default_to_the_same_guidance(run_32px, tmp_path: Path) -> None:
    """The trainer evaluated at guidance 3.0 while `registry-client generate` drew at 4.0."""
    result = evaluate_cli(run_32px.output_dir, tmp_path / "eval")  # phantom-trained
    assert result.exit_code == 0, result.output
    evaluated = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    client_default = next(
        p for p in client_main.commands["generate"].params if p.name == "guidance"
    )
    assert evaluated["settings"]["guidance_scale"] == client_default.default
    assert GenerateOptions(prompts=["x"]).guidance == client_default.default
