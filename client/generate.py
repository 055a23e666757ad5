"""Sample labelled synthetic images from a diffusers pipeline folder.

Every PNG carries text chunks ``synthetic=true`` plus model, version, prompt, negative
prompt, seed, scheduler, steps, guidance and the software version. Image ``i`` of a run is
seeded with ``seed + i`` from its own CPU generator, so a seed names one image whatever the
batch size or device. torch and diffusers are imported here only, lazily, so ``pull`` and
the rest of the client work without them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from client.errors import ConfigError
from client.http import software_version

SCHEDULERS = ("dpm++", "dpm++-karras", "unipc", "euler", "euler-a", "ddim", "pndm", "model")
DEFAULT_SCHEDULER = "dpm++"
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 3.0  # RoentGen's inference setting; the trainer evaluates with it too
CONTACT_SHEET = "contact-sheet.png"


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
    """Everything that decides which images a run makes (and how fast)."""

    prompts: Sequence[str]
    n: int = 1
    seed: int = 0
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    scheduler: str = DEFAULT_SCHEDULER
    height: int | None = None
    width: int | None = None
    batch_size: int = 4
    negative_prompt: str = ""
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    threads: int = 0
    dicom: bool = False
    dicom_prompt: bool = False  # the prompt's text in DICOM (else only its SHA-256)
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where the images come from: the model, its version and the registry."""

    model: str
    version: str
    registry: str = ""


@dataclasses.dataclass(frozen=True)
class Job:
    index: int
    prompt: str
    seed: int


def plan_jobs(options: GenerateOptions) -> list[Job]:
    """Image ``i`` (over all prompts, ``n`` per prompt) gets seed ``seed + i``."""
    if not options.prompts:
        raise ConfigError("Give a prompt (or --prompts-file)")
    if options.n < 1 or options.batch_size < 1 or options.steps < 1:
        raise ConfigError("-n, --batch-size and --steps must be at least 1")
    jobs = []
    for prompt in options.prompts:
        for _ in range(options.n):
            index = len(jobs)
            jobs.append(Job(index, prompt, options.seed + index))
    return jobs


def resolve_device(requested: str) -> str:
    """``auto`` picks cuda, then mps, then cpu."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    if requested not in ("cuda", "mps", "cpu"):
        raise ConfigError(f"Unknown device {requested!r}; use auto, cuda, mps or cpu")
    return requested


def resolve_dtype(requested: str, device: str) -> Any:
    """``auto``: bf16 on CUDA when supported (else fp16), fp16 on mps, fp32 on cpu."""
    import torch

    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if requested != "auto":
        if requested not in names:
            raise ConfigError(f"Unknown dtype {requested!r}; use auto, fp32, fp16 or bf16")
        return names[requested]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def make_scheduler(name: str, config: Any) -> Any:
    """A scheduler by short name, configured from the model's own scheduler config."""
    import diffusers

    kinds: dict[str, tuple[str, dict[str, Any]]] = {
        "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
        "dpm++-karras": (
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
        ),
        "unipc": ("UniPCMultistepScheduler", {}),
        "euler": ("EulerDiscreteScheduler", {}),
        "euler-a": ("EulerAncestralDiscreteScheduler", {}),
        "ddim": ("DDIMScheduler", {}),
        "pndm": ("PNDMScheduler", {}),
    }
    if name not in kinds:
        raise ConfigError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    class_name, extra = kinds[name]
    return getattr(diffusers, class_name).from_config(config, **extra)


def load_pipeline(folder: Path, options: GenerateOptions) -> tuple[Any, str, Any]:
    """The pipeline on its device, with the chosen scheduler and CUDA speed-ups."""
    import torch
    from diffusers import DiffusionPipeline

    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    if options.threads:
        torch.set_num_threads(options.threads)  # e.g. 1 on a busy shared CPU
    if options.quiet:
        import diffusers.utils.logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        diffusers_logging.set_verbosity_error()
    pipe = DiffusionPipeline.from_pretrained(
        str(folder), local_files_only=True, use_safetensors=True, **_dtype_argument(dtype)
    )
    if options.scheduler != "model":
        pipe.scheduler = make_scheduler(options.scheduler, pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if device == "cuda":
        from diffusers.models.attention_processor import AttnProcessor2_0

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # PyTorch SDPA (flash/mem-efficient)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if options.compile:
        pipe.unet = torch.compile(pipe.unet, fullgraph=False)
    return pipe, device, dtype


def _dtype_argument(dtype: Any) -> dict[str, Any]:
    """diffusers renamed ``torch_dtype`` to ``dtype``; use whichever this version knows."""
    from diffusers.utils import deprecation_utils

    known = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype": dtype} if known else {"torch_dtype": dtype}


def image_size(pipe: Any, options: GenerateOptions) -> tuple[int, int]:
    default = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    height, width = options.height or default, options.width or default
    if height % 8 or width % 8:
        raise ConfigError(f"--height and --width must be multiples of 8 (got {height}x{width})")
    return height, width


def generate(
    folder: Path,
    out_dir: Path,
    options: GenerateOptions,
    provenance: Provenance,
    *,
    notify: Callable[[str], None] = print,
    loaded: tuple[Any, str, Any] | None = None,
) -> list[Path]:
    """Sample every planned image into ``out_dir``; returns the PNG paths (sheet excluded).

    ``loaded`` is a ``load_pipeline`` result to reuse (benchmarks, notebooks)."""
    import torch

    jobs = plan_jobs(options)
    pipe, device, dtype = loaded or load_pipeline(folder, options)
    height, width = image_size(pipe, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "synthetic": "true",
        "model": provenance.model,
        "version": provenance.version,
        "registry": provenance.registry,
        "negative_prompt": options.negative_prompt,
        "scheduler": options.scheduler
        if options.scheduler != "model"
        else type(pipe.scheduler).__name__,
        "steps": str(options.steps),
        "guidance": f"{options.guidance:g}",
        "width": str(width),
        "height": str(height),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "software": software_stamp(),
    }
    if not options.quiet:
        notify(
            f"{len(jobs)} image(s) at {width}x{height}: {settings['scheduler']}, "
            f"{options.steps} steps, guidance {options.guidance:g}, {device} {settings['dtype']}"
        )
    dicom_ids = _dicom_series() if options.dicom else None
    paths: list[Path] = []
    images: list[Any] = []
    bar = _progress(len(jobs), options.quiet)
    for start in range(0, len(jobs), options.batch_size):
        batch = jobs[start : start + options.batch_size]
        generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in batch]
        with torch.inference_mode():
            result = pipe(
                prompt=[job.prompt for job in batch],
                negative_prompt=[options.negative_prompt] * len(batch)
                if options.negative_prompt
                else None,
                num_inference_steps=options.steps,
                guidance_scale=options.guidance,
                height=height,
                width=width,
                generator=generators,
                output_type="pil",
            )
        for job, image in zip(batch, result.images, strict=True):
            image = image.convert("L")  # one channel: no colour tint on a chest X-ray
            chunks = {**settings, "prompt": job.prompt, "seed": str(job.seed)}
            chunks["index"] = str(job.index)
            chunks["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            path = out_dir / f"{job.index:05d}-seed{job.seed}.png"
            save_png(image, path, chunks)
            if dicom_ids is not None:
                from client.dicom import write_secondary_capture

                write_secondary_capture(
                    image,
                    path.with_suffix(".dcm"),
                    chunks,
                    study_uid=dicom_ids[0],
                    series_uid=dicom_ids[1],
                    instance_number=job.index + 1,
                    include_prompt=options.dicom_prompt,
                )
            paths.append(path)
            images.append(image)
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    sheet = contact_sheet(images)
    seeds = f"{options.seed}..{options.seed + len(jobs) - 1}"
    sheet_chunks = {**settings, "prompt": " | ".join(options.prompts), "seed": seeds}
    save_png(sheet, out_dir / CONTACT_SHEET, sheet_chunks)
    (out_dir / "generation.json").write_text(
        json.dumps(
            {
                **settings,
                "synthetic": True,
                "steps": options.steps,
                "guidance": options.guidance,
                "width": width,
                "height": height,
                "images": [
                    {"file": p.name, "prompt": j.prompt, "seed": j.seed}
                    for p, j in zip(paths, jobs, strict=True)
                ],
            },  # fmt: skip
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return paths


def software_stamp() -> str:
    import diffusers
    import torch

    return (
        f"registry-client {software_version()}; diffusers {diffusers.__version__}; "
        f"torch {torch.__version__}"
    )


def save_png(image: Any, path: Path, chunks: dict[str, str]) -> None:
    """Save with one text chunk per provenance field (iTXt when the text is not Latin-1)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    info.add_text(
        "Description",
        f"SYNTHETIC image generated by {chunks.get('model')}@{chunks.get('version')}; "
        "not a real patient.",
    )
    image.save(path, pnginfo=info)


def contact_sheet(images: Sequence[Any], *, cell: int = 256) -> Any:
    """All images in a grid, each scaled to fit ``cell`` pixels."""
    from PIL import Image

    columns = max(1, math.ceil(math.sqrt(len(images))))
    rows = max(1, math.ceil(len(images) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), "black")
    for i, image in enumerate(images):
        thumb = image.convert("RGB")
        thumb.thumbnail((cell, cell))
        if thumb.width < cell // 2:
            scale = cell // max(thumb.width, thumb.height)
            thumb = thumb.resize((thumb.width * scale, thumb.height * scale), Image.NEAREST)
        x, y = (i % columns) * cell, (i // columns) * cell
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
    return sheet


def _dicom_series() -> tuple[str, str]:
    from pydicom.uid import generate_uid

    return generate_uid(), generate_uid()


def _progress(total: int, quiet: bool) -> Any:
    if quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="generating")
