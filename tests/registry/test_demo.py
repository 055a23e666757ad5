"""``seed-demo`` needs no torch: the demo pipeline's weights are written from a committed list
of tensor names, shapes and dtypes, which must match what diffusers builds (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.demo import DEMO_REPO, build_demo_folder
from registry.demo_weights import DEMO_PIPELINE, TENSORS_FILE, describe_weights

NOT_INSTALLED = ("torch", "numpy", "safetensors", "diffusers", "transformers", "tokenizers")
_VERSION_KEYS = {"_diffusers_version", "transformers_version"}


def _without_versions(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k not in _VERSION_KEYS}
    return value


def _blocked(code: str) -> str:
    return f"import sys\nfor name in {NOT_INSTALLED!r}:\n    sys.modules[name] = None\n{code}"


@pytest.fixture(scope="module")
def built_by_diffusers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from trainer.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("trainer") / "tiny", seed=0)


def test_the_committed_layout_is_what_diffusers_builds(built_by_diffusers: Path) -> None:
    committed = json.loads((DEMO_PIPELINE / TENSORS_FILE).read_text(encoding="utf-8"))
    assert describe_weights(built_by_diffusers) == committed
    ours = {p.relative_to(DEMO_PIPELINE).as_posix() for p in DEMO_PIPELINE.rglob("*.*")}
    theirs = {
        p.relative_to(built_by_diffusers).as_posix()
        for p in built_by_diffusers.rglob("*")
        if p.is_file() and p.suffix != ".safetensors"
    }
    assert ours - {TENSORS_FILE} == theirs
    for path in sorted(theirs):
        mine, built = DEMO_PIPELINE / path, built_by_diffusers / path
        if path.endswith(".json"):
            assert _without_versions(json.loads(mine.read_text())) == _without_versions(
                json.loads(built.read_text())
            ), path
        else:
            assert mine.read_bytes() == built.read_bytes(), path


def test_the_demo_folder_loads_in_diffusers_and_generates(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    folder = build_demo_folder(tmp_path / "demo")
    pipeline = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    for part in ("unet", "vae", "text_encoder"):
        (weights,) = (folder / part).glob("*.safetensors")
        # transformers 5 names the text encoder's tensors without the "text_model." prefix
        stored = {k.removeprefix("text_model."): v for k, v in load_file(weights).items()}
        built = {
            k.removeprefix("text_model."): v
            for k, v in getattr(pipeline, part).state_dict().items()
        }
        assert set(built) - set(stored) <= {"embeddings.position_ids"}, part
        assert {k: tuple(v.shape) for k, v in stored.items()} == {
            k: tuple(built[k].shape) for k in stored
        }, part
        assert all(torch.equal(built[k].to(v.dtype), v) for k, v in stored.items()), part
    image = pipeline(
        "frontal chest x-ray",
        num_inference_steps=1,
        height=32,
        width=32,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.shape == (32, 32, 3) and bool((image == image).all())


def test_the_demo_folder_is_written_without_torch(tmp_path: Path) -> None:
    code = _blocked(
        "from pathlib import Path\n"
        "from registry.demo import build_demo_folder\n"
        "from registry.publishing.validation import validate_folder\n"
        f"folder = build_demo_folder(Path({str(tmp_path / 'demo')!r}))\n"
        "card, problems = validate_folder(folder)\n"
        "assert problems == [], problems\n"
        "print(card['access_tier'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "open"
    first = (tmp_path / "demo" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    again = build_demo_folder(tmp_path / "again")
    assert (again / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == first


def test_seed_demo_runs_without_torch(settings) -> None:
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_INSTANCE_PATH": str(settings.instance_path),
        "REGISTRY_SECRET_KEY": settings.secret_key,
        "REGISTRY_PUBLIC_URL": settings.public_url,
    }
    code = _blocked("from registry.cli import main\nmain(['seed-demo'])\n")
    for expected in ("seeded", "already present"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert expected in result.stdout and DEMO_REPO in result.stdout, result.stdout
